"""Writing the agent's own files so that a crash or a second copy never leaves half of one."""

import os
import tempfile


def write_atomically(path: str, text: str, replace: bool = True) -> bool:
    """Write ``text`` to ``path`` with mode 0600, all or nothing; False if it exists and
    ``replace`` is false (then nothing is written).

    The text goes to a new file in the same directory (``mkstemp``: O_EXCL, mode 0600),
    is flushed to disk, then renamed over ``path`` (or, without ``replace``, hard-linked to
    it, which fails if ``path`` exists even when another process created it a moment ago);
    the directory is flushed too, so the new name survives a power cut.
    """
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # mkstemp's mode already, whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    _sync_directory(directory)
    return True


def _sync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
