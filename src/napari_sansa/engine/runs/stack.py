"""Segment volumes and time-lapses through the stack, as SAM2 tracks objects through a video.

Every annotated plane becomes a conditioning frame of its classes' memory; masks then propagate
plane by plane, forwards from the first annotated plane to the end and backwards from it to
plane 0 (SAM2's ``propagate_in_video``, forwards then in reverse), each predicted plane becoming
memory for the next. Which memories a plane sees follows SAM2's own rules
(``SAM2Base._prepare_memory_conditioned_features``): all conditioning frames of the class, the
last ``num_maskmem - 1`` planes predicted in the current direction with temporal encodings by
distance, and the object pointers of the conditioning frames and of recent planes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from napari_sansa.engine.callbacks import Cancel, OnError, Progress, is_cancelled
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import MAX_CHANNELS, Image, image_hw
from napari_sansa.engine.inputs.prompts import ClassPrompt, resolve_prompts
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import MemoryEntry, attend_to_memory, decode_heads, encode_memory
from napari_sansa.engine.runs.results import Prediction, prediction
from napari_sansa.engine.runtime.prefetch import Prefetch
from napari_sansa.engine.runtime.runtime import Outcome, PreparedImage, Runtime

Memory = Mapping[int, MemoryEntry]  # plane index -> that plane's memory of one class


# ----------------------------------------------------------------- memory selection (SAM2's rules)
def select_memory(
    sam, plane: int, cond: Memory, recent: Memory, *, reverse: bool, num_planes: int
) -> tuple[list[tuple[int, MemoryEntry]], list[tuple[int, torch.Tensor]]]:
    """The memories SAM2 lets ``plane`` see while tracking one object.

    ``cond`` holds the object's conditioning planes (all of them are attended to unless the
    model limits ``max_cond_frames_in_attn``), ``recent`` the planes predicted so far in this
    direction. Returns ``(t_pos, memory)`` pairs for spatial memory (0 = conditioning; the plane
    just before gets ``num_maskmem - 1``) and ``(distance, pointer)`` pairs for object pointers.
    """
    from sam2.modeling.sam2_utils import select_closest_cond_frames

    selected, unselected = select_closest_cond_frames(plane, dict(cond), sam.max_cond_frames_in_attn)
    spatial = [(0, entry) for entry in selected.values()]
    stride = sam.memory_temporal_stride_for_eval
    sign = -1 if reverse else 1
    for t_pos in range(1, sam.num_maskmem):
        t_rel = sam.num_maskmem - t_pos  # how many planes before this one
        if t_rel == 1:
            previous = plane - sign
        elif not reverse:  # every stride-th plane before the last one
            previous = ((plane - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            previous = -(-(plane + 2) // stride) * stride + (t_rel - 2) * stride
        entry = recent.get(previous, unselected.get(previous))
        if entry is not None:
            spatial.append((t_pos, entry))

    pointers: list[tuple[int, torch.Tensor]] = []
    if sam.use_obj_ptrs_in_encoder:
        if sam.only_obj_ptrs_in_the_past_for_eval:
            selected = {t: e for t, e in selected.items() if (t >= plane if reverse else t <= plane)}
        signed = sam.use_signed_tpos_enc_to_obj_ptrs
        pointers = [
            ((plane - t) * sign if signed else abs(plane - t), e.obj_ptr) for t, e in selected.items()
        ]
        for distance in range(1, min(num_planes, sam.max_obj_ptrs_in_encoder)):
            t = plane - sign * distance
            if not 0 <= t < num_planes:
                break
            entry = recent.get(t, unselected.get(t))
            if entry is not None:
                pointers.append((distance, entry.obj_ptr))
    return spatial, pointers


def _pointer_positions(sam, distances: Sequence[int], num_planes: int, device) -> torch.Tensor | None:
    """Temporal encodings of object pointers by distance, where the model uses them (else zeros)."""
    if not distances or not sam.add_tpos_enc_to_obj_ptrs:
        return None
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    t_diff_max = max(1, min(num_planes, sam.max_obj_ptrs_in_encoder) - 1)
    dim = sam.hidden_dim if sam.proj_tpos_enc_in_obj_ptrs else sam.mem_dim
    pe = get_1d_sine_pe(torch.tensor(distances, device=device, dtype=torch.float32) / t_diff_max, dim=dim)
    return sam.obj_ptr_tpos_proj(pe).unsqueeze(1)


def condition_on_track(
    sam,
    feats: ImageFeatures,
    pos: torch.Tensor,
    plane: int,
    cond: Memory,
    recent: Memory,
    *,
    reverse: bool,
    num_planes: int,
) -> torch.Tensor:
    """A plane's top-level features after attending to its object's memory (see :func:`select_memory`)."""
    spatial, pointers = select_memory(sam, plane, cond, recent, reverse=reverse, num_planes=num_planes)
    positions = _pointer_positions(sam, [d for d, _ in pointers], num_planes, feats.top.device)
    return attend_to_memory(sam, feats, pos, spatial, [p for _, p in pointers], positions)


# ----------------------------------------------------------------- planes and annotations
class Planes:
    """One plane at a time from a ``(Z, Y, X[, C])`` array-like or from a sequence of images."""

    def __init__(self, stack: Any) -> None:
        self._stack = stack
        self._shape: tuple[int, ...] | None = None
        is_array = hasattr(stack, "shape") and hasattr(stack, "__getitem__")
        if isinstance(stack, (str, bytes)) or not (is_array or isinstance(stack, Sequence)):
            raise SansaError(
                f"A stack must be a (Z, Y, X) or (Z, Y, X, C) array or a list of images, "
                f"not {type(stack).__name__}."
            )
        if is_array and not isinstance(stack, (list, tuple)):
            shape = tuple(int(s) for s in stack.shape)
            if len(shape) == 2:
                raise SansaError(
                    f"A stack must be (Z, Y, X) or (Z, Y, X, C), got shape {shape}: that is a "
                    "single 2D image; use Sansa.propagate for images."
                )
            if len(shape) not in (3, 4):
                raise SansaError(f"A stack must be (Z, Y, X) or (Z, Y, X, C), got shape {shape}.")
            if shape[-1] <= MAX_CHANNELS and len(shape) == 3:
                raise SansaError(
                    f"The stack of shape {shape} looks like one image with {shape[-1]} channels, not a "
                    "stack of planes: pass a (Z, Y, X) or (Z, Y, X, C) array."
                )
            if len(shape) == 4 and shape[-1] > MAX_CHANNELS:
                raise SansaError(
                    f"The stack of shape {shape} has {shape[-1]} channels per plane; at most {MAX_CHANNELS} "
                    "are supported (for a time-lapse of volumes, segment each volume on its own)."
                )
            self._shape = shape
        if len(self) == 0:
            raise SansaError("The stack has no planes.")

    def __len__(self) -> int:
        return self._shape[0] if self._shape is not None else len(self._stack)

    def read(self, z: int) -> Image:
        """Plane ``z`` as an image (only this plane is read from a lazy array)."""
        item = self._stack[z]
        return item if isinstance(item, Image) else Image(np.asarray(item))

    def hw(self, z: int) -> tuple[int, int]:
        """Plane ``z``'s height and width, without reading an array plane."""
        if self._shape is not None:
            return self._shape[1], self._shape[2]
        return image_hw(self.read(z))

    def check_index(self, z: Any, what: str) -> int:
        n = len(self)
        if isinstance(z, bool) or not isinstance(z, (int, np.integer)):
            raise SansaError(f"{what} must be a plane index (an integer), got {z!r}.")
        if not 0 <= z < n:
            raise SansaError(f"{what} is plane {z}, but the stack has {n} planes (0 to {n - 1}).")
        return int(z)


def resolve_annotations(annotations: Any, planes: Planes) -> dict[int, dict[int, ClassPrompt]]:
    """Check ``{plane: {class: prompt(s)}}`` against the stack; errors name the plane."""
    if not isinstance(annotations, Mapping) or not annotations:
        raise SansaError(
            "No annotated plane: give annotations as {plane index: {class id: prompt}} "
            "with at least one plane."
        )
    resolved: dict[int, dict[int, ClassPrompt]] = {}
    for z, prompts in annotations.items():
        z = planes.check_index(z, "An annotation")
        if not isinstance(prompts, Mapping) or not prompts:
            raise SansaError(
                f"Plane {z} has no prompts: give them as {{class id: prompt}}, or leave the plane out."
            )
        try:
            hw = planes.hw(z)
        except SansaError as exc:
            raise SansaError(f"Plane {z}: {exc}") from None
        resolved[z] = resolve_prompts(prompts, hw, f"plane {z}")
    return dict(sorted(resolved.items()))


# ----------------------------------------------------------------- propagation
@dataclass(frozen=True)
class _Visit:
    plane: int
    reverse: bool
    report: bool  # yield a Prediction for it (else only remembered)


def _plan(
    num_planes: int,
    annotated: Mapping[int, Collection[int]],
    classes: Collection[int],
    first: int,
    both_ways: bool,
    skip: Collection[int],
) -> list[_Visit]:
    """Planes to predict, in order: ``first`` then forwards, then backwards from ``first``."""
    order = [(z, False) for z in range(first, num_planes)]
    if both_ways:
        order += [(z, True) for z in range(first - 1, -1, -1)]
    return [
        _Visit(z, reverse, z not in annotated and z not in skip)
        for z, reverse in order
        if set(classes) - set(annotated.get(z, ()))  # a class to predict on this plane
    ]


def propagate_stack(
    runtime: Runtime,
    stack: Any,
    annotations: Mapping[int, Mapping[int, Any]],
    *,
    both_ways: bool = True,
    start: int | None = None,
    skip: Collection[int] = (),
    cancel: Cancel = None,
    progress: Progress = None,
    on_error: OnError = None,
) -> Iterator[Prediction]:
    """See :meth:`Sansa.propagate_stack`. Inputs are checked now; the work starts when the
    predictions are first asked for."""
    planes = Planes(stack)
    resolved = resolve_annotations(annotations, planes)
    skip = {planes.check_index(z, "A skipped plane") for z in skip}
    if start is None:
        first = min(resolved)
    else:
        first = planes.check_index(start, "start")
        if first not in resolved:
            raise SansaError(
                f"start is plane {first}, which is not annotated: pass the corrected plane's "
                "annotation with the others."
            )
    classes = sorted({c for prompts in resolved.values() for c in prompts})
    visits = _plan(len(planes), resolved, classes, first, both_ways, skip)
    return _run(runtime, planes, resolved, classes, visits, first, cancel, progress, on_error)


def _run(
    runtime: Runtime,
    planes: Planes,
    resolved: Mapping[int, Mapping[int, ClassPrompt]],
    classes: Sequence[int],
    visits: Sequence[_Visit],
    first: int,
    cancel: Cancel,
    progress: Progress,
    on_error: OnError,
) -> Iterator[Prediction]:
    n = len(planes)
    # Conditioning planes first (SAM2 encodes all prompts before propagating). Annotated planes
    # that still have classes to predict keep their features, so no plane is encoded twice.
    cond: dict[int, dict[int, MemoryEntry]] = {c: {} for c in classes}
    held: dict[int, tuple[PreparedImage, ImageFeatures]] = {}
    to_visit = {v.plane for v in visits}
    for z, prompts in resolved.items():
        with runtime.lock:
            try:
                prepared = runtime.prepare(planes.read(z))
                for class_id, prompt in prompts.items():
                    cond[class_id][z] = runtime.explaining_oom(
                        prepared.hw, partial(runtime.reference_memory, prepared, prompt)
                    )
                if z in to_visit:
                    held[z] = (prepared, runtime.features(prepared))
            except SansaError as exc:
                raise SansaError(f"Annotated plane {z}: {exc}") from None

    total = sum(v.report for v in visits)
    if progress is not None:
        progress(0, total)
    recent: dict[int, dict[int, MemoryEntry]] = {c: {} for c in classes}
    seed: dict[int, dict[int, MemoryEntry]] = {c: {} for c in classes}
    sam = runtime.sam
    window = max(sam.num_maskmem * sam.memory_temporal_stride_for_eval, sam.max_obj_ptrs_in_encoder)
    done = 0
    to_read = [v.plane for v in visits if v.plane not in held]  # before held planes are popped
    reading = (planes.read(z) for z in to_read)
    with Prefetch(partial(runtime.prepare, load=True), reading, ahead=2, workers=1) as queue:
        futures = (future for chunk in queue.chunks(1) for _, future in chunk)
        turned = False
        for visit in visits:
            if is_cancelled(cancel):
                return
            if visit.reverse and not turned:  # backwards, from the start plane's memory only
                recent, turned = {c: dict(m) for c, m in seed.items()}, True
            z = visit.plane
            try:
                prepared, feats = held.pop(z) if z in held else (next(futures).result(), None)
                with runtime.lock:
                    run = partial(_predict_plane, runtime, prepared, feats, visit, cond, recent, n, window)
                    outcome = runtime.explaining_oom(prepared.hw, run)
            except SansaError as exc:
                outcome = exc
            if z == first:
                seed = {c: dict(m) for c, m in recent.items()}
            if isinstance(outcome, SansaError):  # the plane is left out of memory, as a gap
                if on_error is None:
                    raise outcome
                on_error(z, outcome)
            if visit.report:
                done += 1
                if progress is not None:
                    progress(done, total)
                if not isinstance(outcome, SansaError):
                    yield prediction(z, outcome, runtime=runtime, target=prepared)


def _predict_plane(
    runtime: Runtime,
    prepared: PreparedImage,
    feats: ImageFeatures | None,
    visit: _Visit,
    cond: Mapping[int, Memory],
    recent: dict[int, dict[int, MemoryEntry]],
    n: int,
    window: int,
) -> Outcome | None:
    """Predict the plane's classes that are not annotated on it, remember them, and return
    (labels, logits, scores) when the plane is reported."""
    z, sam = visit.plane, runtime.sam
    if feats is None:
        feats = runtime.features(prepared)
    low_res: dict[int, torch.Tensor] = {}
    scores: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        for class_id, memory in recent.items():
            if z in cond[class_id]:
                continue
            pix_feat = condition_on_track(
                sam, feats, runtime.position, z, cond[class_id], memory, reverse=visit.reverse, num_planes=n
            )
            decoded = decode_heads(sam, pix_feat, feats, True)
            memory[z] = encode_memory(sam, feats, decoded.high_res, decoded.obj_ptr)
            for old in [t for t in memory if abs(t - z) >= window]:
                del memory[old]
            low_res[class_id], scores[class_id] = runtime.scored(decoded)
    return runtime.outcomes([prepared], low_res, scores)[0] if visit.report else None
