"""The SANSA model for users: load it, then propagate classes from reference images to targets.

:class:`Sansa` is a facade: it owns a :class:`~napari_sansa.engine.runtime.runtime.Runtime`
(the network, its caches and lock) and hands it to the runs (:mod:`.runs.predicting`,
:mod:`.runs.stack`), which return :class:`Prediction` results that do not keep the model alive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from napari_sansa.engine.adaptation.report import AdaptProgress, AdaptReport, adapted_name
from napari_sansa.engine.callbacks import Cancel, DownloadProgress, OnError, OnTileError, Progress
from napari_sansa.engine.config import SansaConfig
from napari_sansa.engine.inputs.prompts import Prompt, Reference
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.loading import ModelInfo, assemble
from napari_sansa.engine.network.weights import fetch_model
from napari_sansa.engine.runs import predicting
from napari_sansa.engine.runs.annotation_ranking import rank_candidates
from napari_sansa.engine.runs.estimates import Estimate
from napari_sansa.engine.runs.results import Prediction
from napari_sansa.engine.runs.stack import propagate_stack
from napari_sansa.engine.runs.tiled import OnTile, Output
from napari_sansa.engine.runs.tiling import AUTO, TileOptions
from napari_sansa.engine.runtime.feature_cache import FeatureCache
from napari_sansa.engine.runtime.runtime import ImageLike, Runtime

__all__ = ["Estimate", "ImageLike", "ModelInfo", "Prediction", "Sansa"]


class Sansa:
    """SAM2 with SANSA adapters, with a feature cache so that each image is encoded once.

    Build it with :meth:`from_checkpoints` or :meth:`from_pretrained`. Coordinates are
    row/column pixels, as in napari. :attr:`runtime` holds the network, its caches and lock
    (the engine's inner interface, for the runs; see docs/architecture.md).
    """

    def __init__(
        self, sam: torch.nn.Module, config: SansaConfig | None = None, info: ModelInfo | None = None
    ) -> None:
        self.runtime = Runtime(sam, config)
        self.info = info or ModelInfo("unknown", (), 0.0)
        self.adaptation: AdaptReport | None = None  # set by adapt()

    # ----------------------------------------------------------------- what the runtime holds
    @property
    def config(self) -> SansaConfig:
        return self.runtime.config

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def dtype(self) -> torch.dtype:
        return self.runtime.dtype

    @property
    def sam(self) -> torch.nn.Module:
        """The network (SAM2 with the adapters), on its device, frozen."""
        return self.runtime.sam

    @property
    def image_size(self) -> int:
        return self.runtime.image_size

    @property
    def features(self) -> FeatureCache:
        """The feature cache (in memory, spilling to disk)."""
        return self.runtime.feature_cache

    @property
    def encoder_passes(self) -> int:
        """Images (and tiles) that went through the encoder so far."""
        return self.runtime.encoder_passes

    @property
    def compile_seconds(self) -> float | None:
        """How long compiling the encoder took, if it was compiled."""
        return self.runtime.compile_seconds

    @property
    def batch_size(self) -> int:
        """Targets encoded together: the configured number, else 8 on CUDA and 1 elsewhere."""
        return self.runtime.batch_size

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_checkpoints(
        cls,
        sam2_checkpoint: str | os.PathLike,
        adapter_checkpoint: str | os.PathLike,
        *,
        device: str | None = None,
        precision: str | None = None,
        config: SansaConfig | None = None,
        name: str = "",
    ) -> Sansa:
        """Load the official SAM2 file and a SANSA adapter file; sizes are read from the files."""
        config = config or SansaConfig()
        if device is not None or precision is not None:
            config = replace(config, device=device or config.device, precision=precision or config.precision)
        sam, info = assemble(sam2_checkpoint, adapter_checkpoint, config.image_size, name)
        return cls(sam, config, info)

    @classmethod
    def from_pretrained(
        cls,
        name: str = "universal",
        *,
        cache_dir: str | os.PathLike | None = None,
        progress: bool | DownloadProgress = True,
        device: str | None = None,
        precision: str | None = None,
        config: SansaConfig | None = None,
        cancel: Cancel = None,
    ) -> Sansa:
        """A published model by name, downloaded into the cache directory on first use.

        ``progress``: True shows download bars on stderr, False nothing, a function hears (file,
        bytes so far, size) as the files download; ``cancel`` stops a download at once."""
        sam2_path, adapter_path = fetch_model(name, cache_dir=cache_dir, progress=progress, cancel=cancel)
        return cls.from_checkpoints(
            sam2_path, adapter_path, device=device, precision=precision, config=config, name=name
        )

    # ----------------------------------------------------------------- runs
    def estimate(
        self,
        references: Sequence[Reference] | Reference,
        targets: int | Sequence[ImageLike],
        *,
        tile_size: int | str | None = AUTO,
        overlap: int = 128,
        scale: float = 1.0,
    ) -> Estimate:
        """Time and memory for ``targets`` (images, or a count of images of the references' size),
        measured on the references (no extra encoder pass); large images count their tiles."""
        options = TileOptions(tile_size, overlap, scale).check()
        return predicting.estimate(self.runtime, references, targets, options)

    def encode(self, image: ImageLike) -> ImageFeatures:
        """Encode an image now (or take it from the cache), e.g. to prepare targets ahead."""
        with self.runtime.lock:
            return self.runtime.features(self.runtime.prepare(image))

    def propagate(
        self,
        references: Sequence[Reference] | Reference,
        targets: Iterable[ImageLike],
        *,
        sequential: bool = False,
        cancel: Cancel = None,
        progress: Progress = None,
        on_error: OnError = None,
        on_tile_error: OnTileError = None,
        tile_size: int | str | None = AUTO,
        overlap: int = 128,
        scale: float = 1.0,
        output: Output | None = None,
        keep_logits: bool = False,
        on_tile: OnTile | None = None,
    ) -> Iterator[Prediction]:
        """Segment each target with the classes annotated on the references, in order.

        Targets are independent unless ``sequential``, where each target's prediction also
        becomes memory for the next (as SAM2 tracks video). Independent targets go through the
        model in batches of :attr:`batch_size` while the next ones are pre-processed. Stop early
        by breaking out of the loop or with ``cancel`` (an Event or a callable), checked between
        batches; ``progress(done, total)`` is called after each target. A target that cannot
        be segmented (bad data, out of memory) raises a :class:`SansaError`, or, with
        ``on_error(index, error)``, is reported there and skipped while the others go on.

        Large images are segmented at their own resolution in overlapping tiles (see
        :class:`~.tiling.TileOptions` for ``tile_size``, ``overlap`` and ``scale``), each tile an
        encoder pass, their logits blended without seams; targets may be zarr or dask arrays or
        :class:`Multiscale` pyramids, read a tile at a time. A tiled target's labels are written
        row of tiles by row of tiles into ``output(index, (H, W), dtype)`` (any array that takes
        slices: numpy, memory map, zarr; default a numpy array), its logits kept only with
        ``keep_logits`` (float16, on disk); ``on_tile(index, done, total)`` follows its tiles.
        A tile that cannot be read is reported to ``on_tile_error(index, error)`` and left 0,
        the rest written (:attr:`Prediction.missing`); without ``on_tile_error`` it fails the
        target (reported to ``on_error``, or raised).
        """
        options = TileOptions(tile_size, overlap, scale)  # checked when the run starts
        tiling = predicting.Tiling(output, keep_logits, on_tile, on_tile_error)
        return predicting.propagate(
            self.runtime,
            references,
            targets,
            options,
            tiling,
            sequential=sequential,
            cancel=cancel,
            progress=progress,
            on_error=on_error,
        )

    def segment(
        self,
        references: Sequence[Reference] | Reference,
        targets: Iterable[ImageLike],
        *,
        sequential: bool = False,
        cancel: Cancel = None,
        progress: Progress = None,
        on_error: OnError = None,
        **tiling: Any,
    ) -> list[Prediction]:
        """:meth:`propagate`, collected into a list (``tiling``: its ``tile_size``, ``overlap``,
        ``scale``, ``output``, ``keep_logits``, ``on_tile`` and ``on_tile_error``)."""
        options = {"sequential": sequential, "cancel": cancel, "progress": progress, "on_error": on_error}
        return list(self.propagate(references, targets, **options, **tiling))

    def propagate_stack(
        self,
        stack: Any,
        annotations: Mapping[int, Mapping[int, Prompt | Sequence[Prompt]]],
        *,
        both_ways: bool = True,
        start: int | None = None,
        skip: Collection[int] = (),
        cancel: Cancel = None,
        progress: Progress = None,
        on_error: OnError = None,
    ) -> Iterator[Prediction]:
        """Segment a volume or time-lapse through the stack, as SAM2 tracks objects in a video.

        ``stack`` is a ``(Z, Y, X)`` or ``(Z, Y, X, C)`` array (numpy, dask, zarr: read one plane
        at a time) or a sequence of images (e.g. :class:`Image` with contrast limits);
        ``annotations`` maps plane indices to ``{class id: prompt or [prompts]}``. Each annotated
        plane conditions its classes' memory, and masks propagate plane by plane from the first
        annotated plane (or from ``start``, a plane just corrected and passed among the
        annotations) forwards to the end, then, if ``both_ways``, backwards to plane 0; each
        predicted plane is remembered for the next. Without ``both_ways``, planes before the
        start are not segmented. A :class:`Prediction` (``index`` = plane) comes for every
        plane that is neither annotated nor in ``skip``, each once, in that order; planes in
        ``skip`` (e.g. locked by the user) are still predicted, so that memory passes through
        them. ``cancel``, ``progress`` and ``on_error`` work as in :meth:`propagate`. Bad
        inputs raise a :class:`SansaError` at the call, before any work.
        """
        options = {"both_ways": both_ways, "start": start, "skip": skip}
        return propagate_stack(
            self.runtime, stack, annotations, **options, cancel=cancel, progress=progress, on_error=on_error
        )

    def adapt(
        self,
        references: Sequence[Reference] | Reference,
        *,
        steps: int = 300,
        validation: float = 0.25,
        learning_rate: float = 1e-3,
        progress: Callable[[AdaptProgress], None] | None = None,
        cancel: Cancel = None,
        **options: Any,
    ) -> AdaptReport:
        """Fine-tune the adapters (SAM2 stays frozen) on episodes from annotated ``references``.

        Each step segments one annotated image (the query, which needs a mask) from 1 to
        ``shots`` others (masks, points, boxes or scribbles), under random flips, quarter turns
        and intensity jitter, and lowers SANSA's training loss on the query's mask. A share
        ``validation`` of the mask-annotated images is held out, never trained on, and scored
        before and every ``evaluate_every`` steps; the best scored state is kept (also after a
        ``cancel``). ``progress`` gets an :class:`AdaptProgress` after each step. ``options``:
        ``shots`` (3), ``augmentations`` per image (8), ``evaluate_every``, ``patience`` (stop
        after that many scorings without gain), ``train`` ("adapters" or "adapters+decoder"),
        ``checkpointing``, ``seed``. The model is changed in place; :meth:`save_adapter` writes it.
        """
        from napari_sansa.engine.adaptation.training import adapt

        report = adapt(
            self.runtime,
            references,
            steps=steps,
            validation=validation,
            learning_rate=learning_rate,
            progress=progress,
            cancel=cancel,
            **options,
        )
        self.adaptation = report
        self.info = replace(self.info, name=adapted_name(self.info.name))
        return report

    def save_adapter(self, path: str | os.PathLike, *, reference_set: str = "") -> Path:
        """Write the adapters in the published adapter format (loads with ``--adapter``), with a
        record of the adaptation (base adapter, reference set, steps, held-out scores)."""
        from napari_sansa.engine.adaptation.checkpoint import save_adapter

        return save_adapter(self, path, reference_set=reference_set)

    def rank_for_annotation(
        self,
        references: Sequence[Reference] | Reference,
        targets: Sequence[ImageLike],
        *,
        scores: Sequence[float | None] | None = None,
    ) -> list[int]:
        """Indices of ``targets``, the one whose annotation should help most first: the least
        confident predictions and the images least like the references in SAM2's feature space
        (see :mod:`~.runs.annotation_ranking`). ``scores``: confidences from an earlier run
        (:attr:`Prediction.score`); targets without one are propagated now. Cached targets
        cost no encoder pass."""
        return [c.index for c in rank_candidates(self.runtime, references, targets, scores=scores)]

    def clear_cache(self) -> None:
        """Forget cached features (in memory and on disk) and reference memories, and give
        the memory kept for reuse back to the system."""
        self.runtime.clear()

    def close(self) -> None:
        """Free the caches and delete the disk cache's folder now (also done when garbage-collected)."""
        self.runtime.close()
