"""What a background job says as it goes (no Qt): how far it is and what it does now."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps finished; ``what``: the step that starts now, in words."""

    done: int
    total: int
    what: str
