"""Independent (or sequential) targets from references: the run behind :meth:`Sansa.propagate`.

References become each class's memory bank; targets are prepared ahead in workers (a large
one planned in tiles, :mod:`.tiled`), go through the heads in batches, and a failing batch is
run again one target at a time so that only the failing target is reported. Everything the
network does goes through the :class:`~napari_sansa.engine.runtime.runtime.Runtime`.
"""

from __future__ import annotations

import functools
import logging
import os
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch

from napari_sansa.engine.callbacks import Cancel, OnError, OnTileError, Progress, is_cancelled
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import image_hw
from napari_sansa.engine.inputs.large_images import large_image
from napari_sansa.engine.inputs.prompts import Reference, resolve_reference
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import MemoryEntry, decode_target, encode_memory
from napari_sansa.engine.runs.estimates import Estimate
from napari_sansa.engine.runs.reference_crops import crop_references
from napari_sansa.engine.runs.results import Prediction, prediction
from napari_sansa.engine.runs.tiled import OnTile, Output, TiledTarget, run_tiled, tiled_bytes
from napari_sansa.engine.runs.tiling import TileOptions, count_tiles, tile_grid
from napari_sansa.engine.runtime.prefetch import Prefetch
from napari_sansa.engine.runtime.runtime import ImageLike, Outcome, PreparedImage, Runtime

log = logging.getLogger(__name__)

Banks = dict[int, dict[int, MemoryEntry]]  # class id -> frame -> memory


@dataclass(frozen=True)
class Tiling:
    """What a run does with targets that are segmented in tiles (see :func:`propagate`)."""

    output: Output | None = None
    keep_logits: bool = False
    on_tile: OnTile | None = None
    on_tile_error: OnTileError = None


class _Cancelled:
    """A chunk stopped because the run was cancelled."""


def class_banks(
    runtime: Runtime, references: Sequence[Reference] | Reference, options: TileOptions | None = None
) -> Banks:
    """Each class's memory bank from the references (large ones as crops at the working scale)."""
    if isinstance(references, Reference):
        references = [references]
    references = list(references)
    if not references:
        raise SansaError("No references: annotate at least one image.")
    num_maskmem = int(runtime.sam.num_maskmem)
    references = crop_references(references, options or TileOptions(), runtime.image_size, num_maskmem)
    resolved = [resolve_reference(ref, i) for i, ref in enumerate(references)]
    prepared = [runtime.prepare(ref.image) for ref in references]
    banks: Banks = {}
    for class_id in sorted({c for prompts in resolved for c in prompts}):
        shots = [
            (prep, prompts[class_id]) for prep, prompts in zip(prepared, resolved) if class_id in prompts
        ]
        if len(shots) > num_maskmem:
            log.warning(
                "Class %d has %d references; SAM2's memory holds %d frames, so only the first "
                "and the last %d references give spatial memory.",
                class_id,
                len(shots),
                num_maskmem,
                num_maskmem - 1,
            )
        banks[class_id] = {
            i: runtime.reference_memory(prep, prompt) for i, (prep, prompt) in enumerate(shots)
        }
    return banks


def predict_batch(
    runtime: Runtime,
    prepared: Sequence[PreparedImage],
    banks: Mapping[int, dict[int, MemoryEntry]],
    frames: Mapping[int, int],
    remember: bool,
) -> list[Outcome]:
    """Labels, logits and scores of a batch of targets; the batch stays on the device from the
    encoder to the labels. With ``remember`` (one target), it becomes memory for the next."""
    if remember and len(prepared) != 1:
        raise ValueError("sequential targets are predicted one at a time")
    feats = ImageFeatures.stack(runtime.features_many(prepared))
    sam = runtime.sam
    low_res: dict[int, torch.Tensor] = {}
    scores: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        for class_id, bank in banks.items():
            frame = frames[class_id]
            decoded = decode_target(sam, feats, runtime.position, frame, bank)
            if remember:
                bank[frame] = encode_memory(sam, feats, decoded.high_res, decoded.obj_ptr)
                window = max(sam.num_maskmem, sam.max_obj_ptrs_in_encoder)
                for old in [k for k in bank if 0 < k <= frame - window]:
                    del bank[old]
            low_res[class_id], scores[class_id] = runtime.scored(decoded)
    return runtime.outcomes(prepared, low_res, scores)


def prepare_target(
    runtime: Runtime, target: ImageLike, options: TileOptions, sequential: bool
) -> PreparedImage | TiledTarget:
    """Run in prefetch workers: check, key and pre-process a target; a large one is planned
    in tiles (its contrast decided from a sample), its pixels left where they are."""
    grid = tile_grid(image_hw(target), options, runtime.image_size)
    if grid is None:
        return runtime.prepare(target, load=True)
    if sequential:
        raise SansaError(
            f"This {grid.shape[0]}x{grid.shape[1]} image would be segmented in {len(grid)} tiles, "
            "and tiles are not a sequence: pass tile_size=None to track large images whole."
        )
    return TiledTarget(large_image(target), grid, float(options.scale))


def _tiled(
    runtime: Runtime, index: int, target: TiledTarget, banks: Banks, shots, tiling: Tiling, cancel: Cancel
) -> Prediction | SansaError | _Cancelled:
    frames = {c: shots[c] for c in banks}
    try:
        result = run_tiled(
            runtime,
            index,
            target,
            banks,
            frames,
            output=tiling.output,
            keep_logits=tiling.keep_logits,
            on_tile=tiling.on_tile,
            on_tile_error=tiling.on_tile_error,
            cancelled=lambda: is_cancelled(cancel),
        )
    except SansaError as exc:
        return exc
    if result is None:
        return _Cancelled()
    labels, logits, scores, missing = result
    return prediction(index, Outcome(labels, logits, scores), tiles=len(target.grid), missing=missing)


def _run_chunk(
    runtime: Runtime,
    chunk: Sequence[tuple[int, Future]],
    banks: Banks,
    shots: Mapping[int, int],
    sequential: bool,
    tiling: Tiling,
    cancel: Cancel,
) -> list[tuple[int, Prediction | SansaError | _Cancelled]]:
    """(index, Prediction or SansaError) for each target of a chunk, in order; a failing batch
    is run again one target at a time, so that only the failing target is reported."""
    outcomes: dict[int, Prediction | SansaError | _Cancelled] = {}
    ready: list[tuple[int, PreparedImage]] = []
    for index, future in chunk:
        try:
            item = future.result()
        except SansaError as exc:
            outcomes[index] = exc
            continue
        if isinstance(item, TiledTarget):
            outcomes[index] = _tiled(runtime, index, item, banks, shots, tiling, cancel)
            if isinstance(outcomes[index], _Cancelled):
                return sorted(outcomes.items(), key=lambda pair: pair[0])
        else:
            ready.append((index, item))
    groups = [ready] if ready else []
    while groups:
        group = groups.pop(0)
        frames = {c: shots[c] + (group[0][0] if sequential else 0) for c in banks}
        prepared = [p for _, p in group]
        try:
            with runtime.lock:
                run = functools.partial(predict_batch, runtime, prepared, banks, frames, sequential)
                results = runtime.explaining_oom(prepared[0].hw, run)
        except SansaError as exc:
            if len(group) > 1:
                groups = [[item] for item in group] + groups
                continue
            outcomes[group[0][0]] = exc
            continue
        for (index, target), outcome in zip(group, results):
            outcomes[index] = prediction(index, outcome, runtime=runtime, target=target)
    return sorted(outcomes.items(), key=lambda pair: pair[0])


def propagate(
    runtime: Runtime,
    references: Sequence[Reference] | Reference,
    targets: Iterable[ImageLike],
    options: TileOptions,
    tiling: Tiling,
    *,
    sequential: bool = False,
    cancel: Cancel = None,
    progress: Progress = None,
    on_error: OnError = None,
) -> Iterator[Prediction]:
    """See :meth:`Sansa.propagate`."""
    options = options.check()
    total = len(targets) if hasattr(targets, "__len__") else None
    with runtime.lock:
        banks = class_banks(runtime, references, options)
    if progress is not None:
        progress(0, total)
    shots = {c: len(bank) for c, bank in banks.items()}
    if sequential:  # targets extend the pseudo-video, so each class keeps its own bank
        banks = {c: dict(bank) for c, bank in banks.items()}
    batch = 1 if sequential else runtime.batch_size
    workers = min(4, os.cpu_count() or 1) if runtime.device.type == "cuda" else 1
    prepare = functools.partial(prepare_target, runtime, options=options, sequential=sequential)
    with Prefetch(prepare, targets, ahead=2 * batch, workers=workers) as queue:
        for chunk in queue.chunks(batch):
            if is_cancelled(cancel):
                return
            for index, outcome in _run_chunk(runtime, chunk, banks, shots, sequential, tiling, cancel):
                if isinstance(outcome, _Cancelled):
                    return
                if isinstance(outcome, SansaError):
                    if on_error is None:
                        raise outcome
                    on_error(index, outcome)
                if progress is not None:
                    progress(index + 1, total)
                if isinstance(outcome, Prediction):
                    yield outcome


def estimate(
    runtime: Runtime,
    references: Sequence[Reference] | Reference,
    targets: int | Sequence[ImageLike],
    options: TileOptions,
) -> Estimate:
    """See :meth:`Sansa.estimate`."""
    grids: list = []
    if isinstance(targets, (int, np.integer)):
        n_targets = passes = int(targets)
    else:
        n_targets = len(targets)
        passes = sum(count_tiles(image_hw(t), options, runtime.image_size) for t in targets)
        grids = [(t, tile_grid(image_hw(t), options, runtime.image_size)) for t in targets]
    with runtime.lock:
        banks = class_banks(runtime, references, options)
        refs = [references] if isinstance(references, Reference) else list(references)
        refs = crop_references(refs, options, runtime.image_size, int(runtime.sam.num_maskmem))
        feats = runtime.features(runtime.prepare(refs[0].image))
        bank = next(iter(banks.values()))
        start = time.perf_counter()
        with torch.inference_mode():
            decode_target(runtime.sam, feats, runtime.position, len(bank), bank)
        runtime.sync()
        heads = time.perf_counter() - start
    encoder = statistics.median(runtime.encoder_seconds)
    per_pass = encoder + heads * len(banks)
    tiled = [
        tiled_bytes(
            t, g, float(options.scale), len(banks), runtime.image_size, runtime.batch_size, feats.nbytes
        )
        for t, g in grids
        if g is not None
    ]
    return Estimate(
        n_targets,
        per_pass * passes / max(n_targets, 1),
        feats.nbytes,
        runtime.feature_cache.max_bytes or 0,
        passes,
        max(tiled, default=0),
    )
