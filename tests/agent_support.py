"""Test doubles for the agent's command runner (a fake only for what cannot run here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconciler.agent.runner import CommandFailed, Runner


class RecordingRunner(Runner):
    """Records commands; answers from ``answers`` (argv prefix -> output or exception)."""

    def __init__(
        self, answers: dict[tuple[str, ...], str | Exception | Callable[[], str]] | None = None
    ) -> None:
        super().__init__()
        self.commands: list[list[str]] = []
        self.answers = answers or {}

    def run(self, argv: Sequence[str], timeout: float | None = None) -> str:
        self.commands.append(list(argv))
        for prefix, answer in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                if isinstance(answer, Exception):
                    raise answer
                return answer() if callable(answer) else answer
        return ""


__all__ = ["CommandFailed", "RecordingRunner"]
