"""A target's case for being annotated next (:mod:`.annotation_ranking`), torch-free, so that a
client of a remote model (``distributed/remote.py``) reads the server's ranking without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """One target's case for being annotated next (see the module docstring)."""

    index: int  # the target's position in the list given
    uncertainty: float  # 1 - confidence, in [0, 1]
    novelty: float  # cosine distance to the nearest reference's pooled features, in [0, 2]
    priority: float  # the combined, scaled criteria, in [0, 1]: higher = annotate sooner

    @property
    def confidence(self) -> float:
        return 1.0 - self.uncertainty
