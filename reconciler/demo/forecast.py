"""The demo's prediction of its own rollout, and how the real rollout compared with it.

Before the fix is pushed, the demo predicts it as `reconciler plan --predict --what-if-fail`
would (:func:`~reconciler.review.timeline.predict_change`: the real planner in virtual time),
with the demo hosts' own step times as the assumptions. After the real rollout, each
milestone (a wave opened or done, the promotion, the halt) is set against its prediction:
the same milestones in the same order, each within a tolerance the assumptions give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from reconciler.rollout.prediction import Assumptions, Prediction

#: What the demo hosts take: a local `ostree pull` and deploy, and the scripted reboot with
#: the agent's next report (it reports every 2 s, and at once after a boot).
DEMO_STAGE = timedelta(seconds=1)
DEMO_REBOOT = timedelta(seconds=1)
#: How far a real milestone may fall from its prediction. The demo hosts' steps take 0.3 to 2 s
#: where 1 s is assumed, and the drift adds up along the chain (six steps to the halt); the
#: daemon evaluates health checks on a 5-second schedule where the prediction evaluates a
#: gate the moment a soak begins, which can open a wave up to a second late after a 4 s
#: soak. Measured: at most 1.5 s off over several runs on a 2-core machine.
TOLERANCE = timedelta(seconds=5)


def demo_assumptions(failing: str) -> Assumptions:
    return Assumptions(DEMO_STAGE, DEMO_REBOOT, timedelta(minutes=10), frozenset({failing}))


@dataclass(frozen=True, slots=True)
class Step:
    """A milestone of the rollout: ``what`` ("callservers wave 2 opened"), seconds in."""

    what: str
    at: timedelta


def predicted_steps(prediction: Prediction) -> list[Step]:
    """The prediction's milestones, from its start, in time order."""
    start = prediction.start
    steps = [Step(f"{m.stream} promoted", m.at - start) for m in prediction.milestones]
    for group in prediction.groups:
        if not group.rolls_out:
            continue
        for wave in group.waves:
            if wave.opened is not None:
                steps.append(Step(f"{group.group} wave {wave.number} opened", wave.opened - start))
            if wave.done is not None:
                steps.append(Step(f"{group.group} wave {wave.number} done", wave.done - start))
        halts = [s for s in group.stretches if s.phase == "halted"]
        if halts:
            steps.append(Step(f"{group.group} halted", halts[0].start - start))
    return sorted(steps, key=lambda step: step.at)


class EventLike(Protocol):
    """What :func:`real_steps` reads of a stored event."""

    @property
    def at(self) -> datetime: ...
    @property
    def group(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def wave(self) -> int | None: ...


def real_steps(
    events: Sequence[EventLike], start: datetime, promoted: tuple[str, str]
) -> list[Step]:
    """The same milestones from the store's event log (one build's events, oldest first);
    a promotion, ``promoted`` = (stream, group), is when the group's rollout started."""
    steps = []
    for event in events:
        wave = f"wave {event.wave + 1}" if event.wave is not None else ""
        what = {
            "wave_opened": f"{event.group} {wave} opened",
            "wave_completed": f"{event.group} {wave} done",
            "rollout_halted": f"{event.group} halted",
        }.get(event.kind)
        if event.kind == "rollout_started" and event.group == promoted[1]:
            what = f"{promoted[0]} promoted"
        if what is not None:
            steps.append(Step(what, event.at - start))
    return sorted(steps, key=lambda step: step.at)


@dataclass(frozen=True, slots=True)
class Comparison:
    rows: tuple[tuple[str, timedelta | None, timedelta | None], ...]  # what, predicted, real
    same_steps: bool  # the same milestones happened, and no other
    same_order: bool  # in the order predicted (ties in the prediction may go either way)
    worst: timedelta  # the largest difference between a prediction and what happened

    @property
    def matches(self) -> bool:
        return self.same_steps and self.same_order and self.worst <= TOLERANCE


def compare(predicted: Sequence[Step], real: Sequence[Step]) -> Comparison:
    expected = {step.what: step.at for step in predicted}
    happened = {step.what: step.at for step in real}
    names = list(expected) + [name for name in happened if name not in expected]
    rows = tuple((name, expected.get(name), happened.get(name)) for name in names)
    by_time = sorted(real, key=lambda step: step.at)
    in_real_order = [expected[step.what] for step in by_time if step.what in expected]
    differences = [abs(happened[n] - expected[n]) for n in expected if n in happened]
    return Comparison(
        rows,
        set(expected) == set(happened),
        in_real_order == sorted(in_real_order),
        max(differences, default=timedelta(0)),
    )
