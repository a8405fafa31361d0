"""A :class:`ChangeReview` for people and machines: plain text (:mod:`.text`), a pull-request
comment in Markdown (:mod:`.markdown`) and JSON (:mod:`.jsondata`), in the shared words of
:mod:`.sentences`. Pure functions of the review; the same review always renders the same,
and every format holds the same facts."""

from __future__ import annotations

from reconciler.review.jsondata import render_json, review_json
from reconciler.review.markdown import MARKDOWN_BUDGET, render_markdown
from reconciler.review.sentences import summary
from reconciler.review.text import render_text

__all__ = [
    "MARKDOWN_BUDGET",
    "render_json",
    "render_markdown",
    "render_text",
    "review_json",
    "summary",
]
