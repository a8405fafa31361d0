"""OSTree preflight: does a commit exist in a stream's repository before a rollout starts?

An archive repository served over HTTP(S) (or a local one, `file://`) keeps each commit as
`objects/<first 2 hex>/<remaining 62 hex>.commit`; asking for that one file answers the
question without pulling anything.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from reconciler.errors import OstreeRepoUnavailable


def commit_object_path(commit: str) -> str:
    return f"objects/{commit[:2]}/{commit[2:]}.commit"


def commit_exists(repo_url: str, commit: str, timeout: float = 10.0) -> bool:
    """True if ``commit`` is in the repository at ``repo_url``; False if it is certainly not.

    Raises :class:`OstreeRepoUnavailable` when the repository cannot be asked (network,
    server error): not knowing is not the same as missing.
    """
    url = urlparse(repo_url)
    if url.scheme == "file":
        return (Path(url.path) / commit_object_path(commit)).is_file()
    target = repo_url.rstrip("/") + "/" + commit_object_path(commit)
    request = urllib.request.Request(target, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            return False
        raise OstreeRepoUnavailable(f"{target}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # ValueError and InvalidURL: a URL that passes the schema but not urllib (a typo).
        raise OstreeRepoUnavailable(f"{target}: {exc}") from exc
