"""What an adaptation did: held-out scores before and after, steps, time and memory."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AdaptProgress:
    """One step's news for a progress bar or a live plot (``held_out_iou`` when it was scored)."""

    step: int
    steps: int
    loss: float
    held_out_iou: float | None = None
    best_iou: float | None = None


def _mean(scores: dict[int, float]) -> float:
    return sum(scores.values()) / len(scores) if scores else float("nan")


@dataclass
class AdaptReport:
    """The outcome of :meth:`Sansa.adapt`.

    ``before`` and ``after`` map each held-out reference (its index among the references
    given) to its IoU with the adapters before training and as kept (the best scored state);
    ``history`` holds (step, mean held-out IoU) of each scoring, ``losses`` each step's loss.
    """

    held_out: tuple[int, ...]
    trained_on: tuple[int, ...]
    before: dict[int, float] = field(default_factory=dict)
    after: dict[int, float] = field(default_factory=dict)
    steps: int = 0
    best_step: int = 0
    seconds: float = 0.0
    peak_memory_bytes: int = 0
    peak_memory_kind: str = ""
    cancelled: bool = False
    stopped_early: bool = False
    trained: str = "adapters"
    losses: list[float] = field(default_factory=list)
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def iou_before(self) -> float:
        """Mean held-out IoU before training."""
        return _mean(self.before)

    @property
    def iou_after(self) -> float:
        """Mean held-out IoU of the state kept."""
        return _mean(self.after)

    def summary(self) -> str:
        """One line: held-out IoU before and after, and what it took."""
        how = " (cancelled)" if self.cancelled else " (stopped early)" if self.stopped_early else ""
        scored = (
            f"held-out IoU {self.iou_before:.3f} -> {self.iou_after:.3f} on {len(self.held_out)} image(s)"
            if self.held_out
            else "no held-out images: the last state is kept"
        )
        return (
            f"{scored}; {self.steps} steps{how} in {self.seconds:.0f} s, best at step {self.best_step}; "
            f"peak memory {self.peak_memory_bytes / 2**20:.0f} MiB ({self.peak_memory_kind})"
        )

    def record(self) -> dict:
        """Plain numbers and strings, for a checkpoint's metadata."""
        return {
            "held_out": list(self.held_out),
            "trained_on": list(self.trained_on),
            "iou_before": {str(k): float(v) for k, v in self.before.items()},
            "iou_after": {str(k): float(v) for k, v in self.after.items()},
            "steps": int(self.steps),
            "best_step": int(self.best_step),
            "trained": self.trained,
        }


ADAPTED = "adapted"


def adapted_name(name: str) -> str:
    """A model's name once adapted (said once, however often it is adapted)."""
    name = name or "model"
    return name if name.endswith(f"({ADAPTED})") else f"{name} ({ADAPTED})"
