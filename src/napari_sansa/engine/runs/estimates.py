"""What a run will cost (:class:`Estimate`): plain numbers, no torch, so that a remote model's
estimate reaches a client that never loads the network's libraries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """What a run of ``n_targets`` images will cost, from timings measured on this machine."""

    n_targets: int
    seconds_per_target: float
    feature_bytes_per_image: int
    cache_bytes: int
    encoder_passes: int | None = None  # images plus the extra tiles of large ones
    tiled_bytes: int = 0  # the most that one tiled target holds while it is segmented

    @property
    def run_bytes(self) -> int:
        """Memory the run needs beyond the loaded model and one encoder pass's working memory:
        cached features and tiled work (tiles in flight, blending)."""
        return self.memory_bytes + self.tiled_bytes

    @property
    def seconds(self) -> float:
        return self.seconds_per_target * self.n_targets

    @property
    def memory_bytes(self) -> int:
        """Feature memory the run may hold (bounded by the cache budget)."""
        return min(self.feature_bytes_per_image * self.passes, self.cache_bytes)

    @property
    def passes(self) -> int:
        return self.n_targets if self.encoder_passes is None else self.encoder_passes

    def __str__(self) -> str:
        minutes = self.seconds / 60
        when = f"{self.seconds:.0f} s" if minutes < 2 else f"{minutes:.0f} min"
        tiles = f" in {self.passes} tiles" if self.passes > self.n_targets else ""
        return (
            f"about {when} for {self.n_targets} image(s){tiles} ({self.seconds_per_target:.1f} s each), "
            f"up to {self.memory_bytes / 2**30:.1f} GiB of cached features"
            + (f" and {self.tiled_bytes / 2**30:.1f} GiB for tiles" if self.tiled_bytes else "")
        )
