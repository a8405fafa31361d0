"""How the daemon authenticates to the fleet repo's remote: a token over HTTPS (what forges
give bots: GitHub, GitLab and Gitea access tokens) or an SSH key.

Credentials are handed to libgit2 through a callback, once per operation: libgit2 asks again
after every refusal, and answering with the same wrong secret would loop, so a second request
within one fetch or push means "refused" and ends it with a clear error. The token is read
from its file at each use, so a rotated token takes effect without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType

from reconciler.errors import GitRemoteUnavailable

Credential = pygit2.UserPass | pygit2.Keypair


@dataclass(frozen=True)
class GitCredentials:
    """What to answer when the fleet repo's remote asks who we are."""

    username: str | None = None  # HTTPS user (forges accept any for tokens) or SSH user
    token_file: Path | None = None  # HTTPS password or access token
    ssh_key: Path | None = None  # SSH private key; its public key is next to it (.pub)

    @property
    def configured(self) -> bool:
        return self.token_file is not None or self.ssh_key is not None

    def callbacks(self) -> RemoteAuth:
        """Fresh callbacks for one fetch, clone or push."""
        return RemoteAuth(self)

    def answer(self, url: str, username_from_url: str | None, allowed: int) -> Credential:
        if self.ssh_key is not None and allowed & CredentialType.SSH_KEY:
            user = username_from_url or self.username or "git"
            return pygit2.Keypair(user, f"{self.ssh_key}.pub", str(self.ssh_key), "")
        if self.token_file is not None and allowed & CredentialType.USERPASS_PLAINTEXT:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                raise GitRemoteUnavailable(f"cannot read the Git token file: {exc}") from exc
            return pygit2.UserPass(self.username or username_from_url or "git", token)
        raise GitRemoteUnavailable(
            f"{url} asks for credentials and none that it accepts are configured "
            "(--git-token-file for HTTPS, --git-ssh-key for SSH)"
        )


class RemoteAuth(pygit2.RemoteCallbacks):
    """libgit2 callbacks that answer a credentials request once."""

    def __init__(self, credentials: GitCredentials) -> None:
        super().__init__()
        self._credentials = credentials
        self._asked = 0

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: int
    ) -> Credential:
        self._asked += 1
        if self._asked > 1:
            raise GitRemoteUnavailable(f"{url} refused the configured credentials")
        return self._credentials.answer(url, username_from_url, allowed_types)
