"""The SANSA model: load it, then propagate classes from reference images to targets."""

from __future__ import annotations

import functools
import logging
import os
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_sansa.engine.config import SansaConfig, resolve_device, resolve_precision
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image, Multiscale, as_image, image_hw, model_input, to_rgb01
from napari_sansa.engine.inputs.large_images import large_image
from napari_sansa.engine.inputs.prompts import (
    ClassPrompt,
    DensePrompt,
    Prompt,
    Reference,
    mask_in_model_frame,
    prompt_digest,
    resolve_reference,
    sam_point_inputs,
)
from napari_sansa.engine.network.activations import in_place_activations
from napari_sansa.engine.network.compiling import compile_encoder
from napari_sansa.engine.network.loading import assemble
from napari_sansa.engine.network.precision import cast_model, model_dtype
from napari_sansa.engine.network.trims import share_position_encodings
from napari_sansa.engine.runs.memory import (
    MemoryEntry,
    decode_mask_prompt,
    decode_point_prompt,
    decode_target,
    encode_memory,
)
from napari_sansa.engine.runs.predicting import _CANCELLED, Predicting
from napari_sansa.engine.runs.results import Estimate, ModelInfo, Prediction
from napari_sansa.engine.runs.tiled import OnTile, Output, TiledTarget, tiled_bytes
from napari_sansa.engine.runs.tiling import AUTO, TileOptions, count_tiles, tile_grid
from napari_sansa.engine.runtime.allocator import keep_freed_memory, release_freed_memory
from napari_sansa.engine.runtime.disk_cache import DiskFeatureCache, default_disk_bytes
from napari_sansa.engine.runtime.features import FeatureCache, ImageFeatures, default_cache_bytes, image_key
from napari_sansa.engine.runtime.prefetch import Prefetch

log = logging.getLogger(__name__)
MAX_MEMORIES = 256  # reference memories kept for reuse (about 2 MiB each at input 1024), oldest dropped

ImageLike = Image | Multiscale | np.ndarray
Cancel = Callable[[], bool] | threading.Event | None
Progress = Callable[[int, int | None], None] | None
OnError = Callable[[int, SansaError], None] | None


@dataclass(eq=False)
class _Prepared:
    key: bytes
    hw: tuple[int, int]
    image: Image
    tensor: torch.Tensor | None = None  # the model input, made only if the encoder needs it


def _is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class Sansa(Predicting):
    """SAM2 with SANSA adapters, with a feature cache so that each image is encoded once.

    Build it with :meth:`from_checkpoints` or :meth:`from_pretrained`. Coordinates are
    row/column pixels, as in napari.
    """

    def __init__(
        self, sam: torch.nn.Module, config: SansaConfig | None = None, info: ModelInfo | None = None
    ) -> None:
        config = config or SansaConfig()
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.config = replace(config, precision=resolve_precision(self.device, config.precision))
        log.info("SANSA runs on %s at %s", self.device, self.config.precision)
        self.dtype = model_dtype(self.config.precision)
        sam = cast_model(sam.to(self.device).eval(), self.config.precision)
        self.sam = in_place_activations(share_position_encodings(sam, self.dtype))
        for parameter in self.sam.parameters():
            parameter.requires_grad_(False)
        self.image_size = int(self.sam.image_size)
        self.compile_seconds: float | None = None  # how long compiling the encoder took, if it was
        if self.config.compile:
            self.compile_seconds = compile_encoder(self.sam, self.image_size, self.dtype, self.device)
        self.info = info or ModelInfo("unknown", (), 0.0)
        budget = (
            self.config.cache_bytes
            if self.config.cache_bytes is not None
            else default_cache_bytes(self.device)
        )
        self.features = FeatureCache(budget, self._disk_cache())
        self.encoder_passes = 0
        self._encoder_seconds: list[float] = []
        self._memories: OrderedDict[bytes, MemoryEntry] = OrderedDict()  # by image and prompt
        self._position: torch.Tensor | None = None
        self._lock = threading.RLock()

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
        progress: bool = True,
        device: str | None = None,
        precision: str | None = None,
        config: SansaConfig | None = None,
    ) -> Sansa:
        """A published model by name, downloaded into the cache directory on first use."""
        from napari_sansa.engine.network.weights import fetch_model

        sam2_path, adapter_path = fetch_model(name, cache_dir=cache_dir, progress=progress)
        return cls.from_checkpoints(
            sam2_path, adapter_path, device=device, precision=precision, config=config, name=name
        )

    # ----------------------------------------------------------------- encoding
    def _disk_cache(self) -> DiskFeatureCache | None:
        if self.config.disk_cache_bytes == 0:
            return None
        if self.config.disk_cache_dir is not None:
            root = Path(self.config.disk_cache_dir).expanduser()
        else:
            from napari_sansa.engine.network.weights import cache_dir

            root = cache_dir() / "features"
        budget = self.config.disk_cache_bytes
        budget = default_disk_bytes(root) if budget is None else budget
        return DiskFeatureCache(root, budget) if budget > 0 else None

    @property
    def batch_size(self) -> int:
        """Targets encoded together: the configured number, else 8 on CUDA and 1 elsewhere."""
        if self.config.batch_size is not None:
            return self.config.batch_size
        return 8 if self.device.type == "cuda" else 1

    def _prepare(self, image: ImageLike, *, load: bool = False) -> _Prepared:
        """Check an image and key it; with ``load``, also make its model input unless it is cached."""
        image = as_image(image)
        hw = image_hw(image)
        prepared = _Prepared(image_key(image, self.image_size), hw, image)
        if load and prepared.key not in self.features:
            self._input(prepared)
        return prepared

    def _input(self, prepared: _Prepared) -> torch.Tensor:
        if prepared.tensor is None:
            prepared.tensor = model_input(to_rgb01(prepared.image), self.image_size, self.dtype)
        return prepared.tensor

    def _features(self, prepared: _Prepared) -> ImageFeatures:
        return self._features_many([prepared])[0]

    def _features_many(self, prepared: Sequence[_Prepared]) -> list[ImageFeatures]:
        """Features of each image, from the cache or from one encoder pass over the missing ones."""
        found: dict[bytes, ImageFeatures] = {}
        missing: dict[bytes, _Prepared] = {}
        for item in prepared:
            if item.key in found or item.key in missing:
                continue
            cached = self.features.get(item.key, self.device)
            if cached is not None:
                found[item.key] = cached
            else:
                missing[item.key] = item
        if missing:
            inputs = torch.cat([self._input(item) for item in missing.values()]).to(self.device)
            single = len(missing) == 1
            start = time.perf_counter()
            with torch.inference_mode():
                out = self.sam.forward_image(inputs)
            if single:  # timed for estimates; batches run on without waiting for the GPU
                self._sync()
                self._encoder_seconds.append(time.perf_counter() - start)
            self.encoder_passes += len(missing)
            fpn = [level.to(self.dtype) for level in out["backbone_fpn"]]  # the FPN adds in fp32
            if self._position is None:
                self._position = out["vision_pos_enc"][-1][:1].to(self.dtype)
            batch = ImageFeatures((fpn[0], fpn[1]), fpn[2])
            for index, key in enumerate(missing):
                found[key] = batch if single else batch.item(index)
                self.features.put(key, found[key])
        return [found[item.key] for item in prepared]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

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
        grids: list = []
        if isinstance(targets, (int, np.integer)):
            n_targets = passes = int(targets)
        else:
            n_targets = len(targets)
            passes = sum(count_tiles(image_hw(t), options, self.image_size) for t in targets)
            grids = [(t, tile_grid(image_hw(t), options, self.image_size)) for t in targets]
        with self._lock:
            banks = self._class_banks(references, options)
            refs = [references] if isinstance(references, Reference) else list(references)
            refs = self._crops(refs, options)
            feats = self._features(self._prepare(refs[0].image))
            bank = next(iter(banks.values()))
            start = time.perf_counter()
            with torch.inference_mode():
                decode_target(self.sam, feats, self._position, len(bank), bank)
            self._sync()
            heads = time.perf_counter() - start
        encoder = statistics.median(self._encoder_seconds)
        per_pass = encoder + heads * len(banks)
        tiled = [
            tiled_bytes(t, g, float(scale), len(banks), self.image_size, self.batch_size, feats.nbytes)
            for t, g in grids
            if g is not None
        ]
        return Estimate(
            n_targets,
            per_pass * passes / max(n_targets, 1),
            feats.nbytes,
            self.features.max_bytes or 0,
            passes,
            max(tiled, default=0),
        )

    def encode(self, image: ImageLike) -> ImageFeatures:
        """Encode an image now (or take it from the cache), e.g. to prepare targets ahead."""
        with self._lock:
            return self._features(self._prepare(image))

    # ----------------------------------------------------------------- references
    def _reference_memory(self, prepared: _Prepared, prompt: ClassPrompt) -> MemoryEntry:
        key = prepared.key + prompt_digest(prompt)
        entry = self._memories.get(key)
        if entry is not None:
            self._memories.move_to_end(key)
            return entry
        feats = self._features(prepared)
        with torch.inference_mode():
            if isinstance(prompt, DensePrompt):
                mask = mask_in_model_frame(prompt.mask, self.image_size).to(self.device)
                decoded = decode_mask_prompt(self.sam, feats, mask)
            else:
                inputs = sam_point_inputs(prompt, prepared.hw, self.image_size)
                decoded = decode_point_prompt(
                    self.sam, feats, {k: v.to(self.device) for k, v in inputs.items()}
                )
            entry = encode_memory(self.sam, feats, decoded.high_res, decoded.obj_ptr)
        self._memories[key] = entry
        while len(self._memories) > MAX_MEMORIES:  # a live preview makes one per stroke
            self._memories.popitem(last=False)
        return entry

    def _crops(self, references: list[Reference], options: TileOptions) -> list[Reference]:
        """Large references as tile-sized crops around their prompts, at the working scale."""
        from napari_sansa.engine.runs.reference_crops import crop_references

        return crop_references(references, options, self.image_size, int(self.sam.num_maskmem))

    def _class_banks(
        self, references: Sequence[Reference], options: TileOptions | None = None
    ) -> dict[int, dict[int, MemoryEntry]]:
        if isinstance(references, Reference):
            references = [references]
        references = list(references)
        if not references:
            raise SansaError("No references: annotate at least one image.")
        references = self._crops(references, options or TileOptions())
        resolved = [resolve_reference(ref, i) for i, ref in enumerate(references)]
        prepared = [self._prepare(ref.image) for ref in references]
        banks: dict[int, dict[int, MemoryEntry]] = {}
        for class_id in sorted({c for prompts in resolved for c in prompts}):
            shots = [
                (prep, prompts[class_id]) for prep, prompts in zip(prepared, resolved) if class_id in prompts
            ]
            if len(shots) > self.sam.num_maskmem:
                log.warning(
                    "Class %d has %d references; SAM2's memory holds %d frames, so only the first "
                    "and the last %d references give spatial memory.",
                    class_id,
                    len(shots),
                    self.sam.num_maskmem,
                    self.sam.num_maskmem - 1,
                )
            banks[class_id] = {
                i: self._reference_memory(prep, prompt) for i, (prep, prompt) in enumerate(shots)
            }
        return banks

    # ----------------------------------------------------------------- targets
    def _prepare_target(
        self, target: ImageLike, options: TileOptions, sequential: bool
    ) -> _Prepared | TiledTarget:
        """Run in prefetch workers: check, key and pre-process a target; a large one is planned
        in tiles (its contrast decided from a sample), its pixels left where they are."""
        grid = tile_grid(image_hw(target), options, self.image_size)
        if grid is None:
            return self._prepare(target, load=True)
        if sequential:
            raise SansaError(
                f"This {grid.shape[0]}x{grid.shape[1]} image would be segmented in {len(grid)} tiles, "
                "and tiles are not a sequence: pass tile_size=None to track large images whole."
            )
        return TiledTarget(large_image(target), grid, float(options.scale))

    def propagate(
        self,
        references: Sequence[Reference] | Reference,
        targets: Iterable[ImageLike],
        *,
        sequential: bool = False,
        cancel: Cancel = None,
        progress: Progress = None,
        on_error: OnError = None,
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
        A tile that cannot be read is reported to ``on_error`` and left 0, the rest written
        (:attr:`Prediction.missing`); without ``on_error`` it fails the target.
        """
        total = len(targets) if hasattr(targets, "__len__") else None
        options = TileOptions(tile_size, overlap, scale).check()
        with self._lock:
            banks = self._class_banks(references, options)
        if progress is not None:
            progress(0, total)
        shots = {c: len(bank) for c, bank in banks.items()}
        if sequential:  # targets extend the pseudo-video, so each class keeps its own bank
            banks = {c: dict(bank) for c, bank in banks.items()}
        batch = 1 if sequential else self.batch_size
        workers = min(4, os.cpu_count() or 1) if self.device.type == "cuda" else 1
        tiling = {
            "output": output,
            "keep_logits": keep_logits,
            "on_tile": on_tile,
            "on_error": on_error,
            "cancelled": lambda: _is_cancelled(cancel),
        }
        prepare = functools.partial(self._prepare_target, options=options, sequential=sequential)
        with Prefetch(prepare, targets, ahead=2 * batch, workers=workers) as queue:
            for chunk in queue.chunks(batch):
                if _is_cancelled(cancel):
                    return
                for index, outcome in self._run_chunk(chunk, banks, shots, sequential, tiling):
                    if outcome is _CANCELLED:
                        return
                    if isinstance(outcome, SansaError):
                        if on_error is None:
                            raise outcome
                        on_error(index, outcome)
                    if progress is not None:
                        progress(index + 1, total)
                    if isinstance(outcome, Prediction):
                        yield outcome
                    elif not isinstance(outcome, SansaError):
                        yield Prediction(index, *outcome)

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
        ``scale``, ``output``, ``keep_logits`` and ``on_tile``)."""
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
        from napari_sansa.engine.runs.stack import propagate_stack

        options = {"both_ways": both_ways, "start": start, "skip": skip}
        return propagate_stack(
            self, stack, annotations, **options, cancel=cancel, progress=progress, on_error=on_error
        )

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
        from napari_sansa.engine.runs.annotation_ranking import rank_candidates

        return [c.index for c in rank_candidates(self, references, targets, scores=scores)]

    def clear_cache(self) -> None:
        """Forget cached features (in memory and on disk) and reference memories, and give
        the memory kept for reuse back to the system."""
        with self._lock:
            self.features.clear()
            self._memories.clear()
        release_freed_memory()

    def close(self) -> None:
        """Free the caches and delete the disk cache's folder now (also done when garbage-collected)."""
        self.clear_cache()
        if self.features.disk is not None:
            self.features.disk.close()
