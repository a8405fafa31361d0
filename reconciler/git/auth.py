"""How the daemon authenticates to the fleet repo's remote: a token over HTTPS (what forges
give bots: GitHub, GitLab and Gitea access tokens) or an SSH key.

Credentials are handed to libgit2 through a callback, once per operation: libgit2 asks again
after every refusal, and answering with the same wrong secret would loop, so a second request
within one fetch or push means "refused" and ends it with a clear error. The token is read
from its file at each use, so a rotated token takes effect without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pygit2
from pygit2.enums import CredentialType

from reconciler import logs
from reconciler.errors import GitRemoteUnavailable

Credential = pygit2.UserPass | pygit2.Keypair


@dataclass(frozen=True)
class GitCredentials:
    """What to answer when the fleet repo's remote asks who we are."""

    username: str | None = None  # HTTPS user (forges accept any for tokens) or SSH user
    token_file: Path | None = None  # HTTPS password or access token
    ssh_key: Path | None = None  # SSH private key; its public key is next to it (.pub)
    password: str | None = field(default=None, repr=False)  # from a URL's user:password@

    @property
    def configured(self) -> bool:
        return self.token_file is not None or self.ssh_key is not None or self.password is not None

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
            logs.register_secret(token)
            return pygit2.UserPass(self.username or username_from_url or "git", token)
        if self.password is not None and allowed & CredentialType.USERPASS_PLAINTEXT:
            return pygit2.UserPass(self.username or username_from_url or "git", self.password)
        raise GitRemoteUnavailable(
            f"{url} asks for credentials and none that it accepts are configured "
            "(--git-token-file for HTTPS, --git-ssh-key for SSH)"
        )


def credentials_from_url(url: str, credentials: GitCredentials) -> tuple[str, GitCredentials]:
    """``url`` without ``user:password@``, and ``credentials`` that answer with them.

    A password (or token) written into the repo URL would otherwise be stored in the
    mirror's Git config and printed in every error about the remote; it is kept in memory
    and registered as a secret the logs never show.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc or parts.scheme not in ("http", "https"):
        return url, credentials
    userinfo, _, host = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=host))
    if not has_password:
        return clean, replace(credentials, username=credentials.username or unquote(user))
    secret = unquote(password)
    logs.register_secret(secret)
    return clean, replace(
        credentials, username=credentials.username or unquote(user), password=secret
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
