"""What a worker needs to build the model itself: file paths or a published name, and the config."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from napari_sansa.engine.config import SansaConfig
from napari_sansa.engine.errors import SansaError


@dataclass(frozen=True)
class ModelSpec:
    """A model described by where its weights are, small enough to send to every worker.

    Give ``sam2`` and ``adapter`` (checkpoint paths that every worker can read, e.g. on a shared
    file system), or a published model ``name`` with the ``cache_dir`` the workers share (it is
    downloaded into it once, by one worker, if missing).
    """

    sam2: str | None = None
    adapter: str | None = None
    name: str = "universal"
    cache_dir: str | None = None
    config: SansaConfig = SansaConfig()

    def __post_init__(self) -> None:
        if (self.sam2 is None) != (self.adapter is None):
            raise SansaError(
                "Give both the SAM2 and the adapter checkpoint (or neither, to use a published model)."
            )
        for field in ("sam2", "adapter", "cache_dir"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, os.fspath(Path(value).expanduser().absolute()))

    @property
    def local_files(self) -> bool:
        return self.sam2 is not None

    @property
    def wants_cuda(self) -> bool:
        """Whether the config names a CUDA device (``auto`` is decided on each worker)."""
        return self.config.device.startswith("cuda")

    def worker_config(self) -> SansaConfig:
        """The config on a worker: each target is seen once, so no features are kept beyond a batch
        unless the config sets a budget."""
        return replace(
            self.config,
            cache_bytes=0 if self.config.cache_bytes is None else self.config.cache_bytes,
            disk_cache_bytes=0 if self.config.disk_cache_bytes is None else self.config.disk_cache_bytes,
        )

    def fetch(self) -> None:
        """Download a published model into the cache if it is missing (run on one worker first)."""
        if not self.local_files:
            from napari_sansa.engine.network.weights import fetch_model

            fetch_model(self.name, cache_dir=self.cache_dir, progress=False)

    def build(self, *, keep_features: bool = False):
        """The model (run on a worker: this loads torch and the weights); ``keep_features``: with
        the config's own feature caches (a server sees the same images again), not a run's."""
        from napari_sansa.engine.model import Sansa

        config = self.config if keep_features else self.worker_config()
        if self.local_files:
            return Sansa.from_checkpoints(self.sam2, self.adapter, config=config)
        return Sansa.from_pretrained(self.name, cache_dir=self.cache_dir, progress=False, config=config)
