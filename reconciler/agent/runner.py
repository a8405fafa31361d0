"""Running host commands, with failures turned into one exception carrying the error text."""

import subprocess
from typing import Optional, Sequence


class CommandFailed(Exception):
    """A command exited non-zero, timed out or could not be started; ``str()`` says which."""


class Runner:
    """Runs commands; tests replace it to record them or to answer with captured output."""

    def __init__(self, timeout: float = 1800.0) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str], timeout: Optional[float] = None) -> str:
        try:
            done = subprocess.run(
                list(argv),
                stdout=subprocess.PIPE,  # not capture_output=: Python 3.6 has no such argument
                stderr=subprocess.PIPE,
                encoding="utf-8",
                errors="replace",  # odd bytes in a tool's output must not crash the agent
                check=False,
                timeout=timeout or self.timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandFailed(f"{argv[0]}: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise CommandFailed(
                f"`{' '.join(argv)}` exited {done.returncode}: "
                f"{detail[-1] if detail else 'no output'}"
            )
        return done.stdout
