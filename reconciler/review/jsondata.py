"""The review as JSON for machines: the same facts as the text and the Markdown, with camelCase
keys and times in UTC; blocker and warning codes are a stable interface."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from reconciler.review.model import (
    Blocker,
    ChangeKind,
    ChangeReview,
    CommitRef,
    FieldChange,
    GroupReview,
    WindowOpening,
)
from reconciler.review.sentences import local_time, summary
from reconciler.review.timeline import timeline_json


def render_json(review: ChangeReview) -> str:
    return json.dumps(review_json(review), indent=2) + "\n"


def review_json(review: ChangeReview) -> dict[str, Any]:
    """The review as JSON-ready data (camelCase keys; times in UTC ISO 8601)."""
    return {
        "valid": review.valid,
        "blocked": review.blocked,
        "summary": summary(review),
        "now": review.now.astimezone(UTC).isoformat(),
        "fleet": review.fleet,
        "revision": review.revision,
        "baseRevision": review.base_revision,
        "hasBase": review.has_base,
        "liveServer": review.live_server,
        "prediction": timeline_json(review.prediction) if review.prediction else None,
        "notes": list(review.notes),
        "problems": [p.to_json() for p in review.problems],
        "revisionBlockers": [_blocker_json(b) for b in review.revision_blockers],
        "riskWarnings": [
            {"code": r.code.value, "subject": r.subject, "message": r.message} for r in review.risks
        ],
        "streamChanges": [
            {
                "name": s.name,
                "kind": s.kind.value,
                "changes": [_field_json(f) for f in s.fields],
                "groups": list(s.groups),
            }
            for s in review.streams
        ],
        "promotionChanges": [
            {
                "stream": c.stream,
                "changes": [_field_json(f) for f in c.fields],
                "groups": list(c.groups),
            }
            for c in review.promotions
        ],
        "defaultChanges": [
            {**_field_json(d.change), "inheritedBy": list(d.inherited_by)} for d in review.defaults
        ],
        "commitChecks": [
            {
                "subject": c.subject,
                "commit": c.commit,
                "urls": list(c.urls),
                "result": c.result.value,
                "detail": c.detail,
            }
            for c in review.checks
        ],
        "groups": [_group_json(g) for g in review.groups],
        "unchanged": [
            {"name": u.name, **_ref_json(u.commit), "hosts": u.hosts} for u in review.unchanged
        ],
        "removed": list(review.removed),
    }


def _group_json(g: GroupReview) -> dict[str, Any]:
    return {
        "name": g.name,
        "kind": g.kind.value,
        "changesCommit": g.kind in (ChangeKind.NEW, ChangeKind.COMMIT),
        "stream": g.stream,
        "pinReason": g.pin_reason,
        "from": _ref_json(g.from_) if g.from_ else None,
        "to": _ref_json(g.to),
        "hosts": g.hosts,
        "hostsOnTarget": g.hosts_on_target,
        "hostsChangingCommit": g.hosts_changing,
        "hostsUnreported": g.hosts_unreported,
        "movedIn": [
            {"host": m.host, "fromGroup": m.from_group, "from": _ref_json(m.from_)}
            for m in g.moved_in
        ],
        "waves": [{"number": w.number, "size": w.size, "hosts": list(w.hosts)} for w in g.waves],
        "canaries": list(g.canaries),
        "rebootsAnyTime": g.any_time,
        "nextWindows": [_opening_json(w) for w in g.windows],
        "siteWindows": [
            {
                "source": site.source,
                "hosts": site.hosts,
                "rebootsAnyTime": site.any_time,
                "nextWindows": [_opening_json(w) for w in site.windows],
            }
            for site in g.site_windows
        ],
        "freeze": g.freeze,
        "healthChecks": list(g.health_checks),
        "settingsChanged": list(g.settings_changed),
        "blocked": g.blocked,
        "blockers": [_blocker_json(b) for b in g.blockers],
        "notes": list(g.notes),
        "liveStatus": g.live_status,
    }


def _opening_json(w: WindowOpening) -> dict[str, Any]:
    return {
        "schedule": w.window.schedule,
        "timeZone": w.window.time_zone,
        "startsAt": w.starts_at.isoformat(),
        "endsAt": w.ends_at.isoformat(),
        "rebootDeadline": w.reboot_deadline.isoformat(),
        "openNow": w.open_now,
        "local": f"{local_time(w.starts_at, w.window.time_zone).isoformat()}",
    }


def _ref_json(ref: CommitRef) -> dict[str, Any]:
    return {"commit": ref.commit, "version": ref.version}


def _blocker_json(b: Blocker) -> dict[str, Any]:
    return {"code": b.code.value, "message": b.message, "blocking": b.blocking}


def _field_json(change: FieldChange) -> dict[str, Any]:
    """Values as the fleet repo writes them; null where the field is not set."""
    return {"field": change.field, "before": change.before, "after": change.after}
