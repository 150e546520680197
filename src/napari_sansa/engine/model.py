"""The SANSA model: load it, then propagate classes from reference images to targets."""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoints
from .adapters import adapter_modules, attach_adapters, block_input_widths, infer_layout
from .architecture import build_sam2, infer_sam2_size
from .config import SansaConfig, autocast, resolve_device
from .errors import SansaError
from .features import FeatureCache, ImageFeatures, content_key
from .images import Image, as_image, image_hw, model_input, to_rgb01
from .memory import MemoryEntry, decode_mask_prompt, decode_point_prompt, decode_target, encode_memory
from .prompts import (
    ClassPrompt,
    DensePrompt,
    Reference,
    mask_in_model_frame,
    prompt_digest,
    resolve_reference,
    sam_point_inputs,
)

log = logging.getLogger(__name__)

ImageLike = Image | np.ndarray
Cancel = Callable[[], bool] | threading.Event | None
Progress = Callable[[int, int | None], None] | None
OnError = Callable[[int, SansaError], None] | None
OOM_ADVICE = "choose precision bf16, a smaller input size, or device cpu"


@dataclass(frozen=True)
class ModelInfo:
    """What a model was built from, for the record of a run."""

    sam2_size: str
    adapter_blocks: tuple[int, ...]
    channel_factor: float
    sam2_checkpoint: str = ""
    adapter_checkpoint: str = ""
    name: str = ""


@dataclass(eq=False)
class Prediction:
    """The result for one target image.

    ``labels`` holds class ids (0 = background; where classes overlap, the highest logit wins),
    ``logits`` each class's logits at the target's size, ``scores`` each class's confidence in
    [0, 1] (predicted IoU times mask stability), for ranking targets for review.
    """

    index: int
    labels: np.ndarray
    logits: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The lowest class score: how much the least certain class needs a look."""
        return min(self.scores.values()) if self.scores else 1.0


@dataclass(frozen=True)
class Estimate:
    """What a run of ``n_targets`` images will cost, from timings measured on this machine."""

    n_targets: int
    seconds_per_target: float
    feature_bytes_per_image: int
    cache_bytes: int

    @property
    def seconds(self) -> float:
        return self.seconds_per_target * self.n_targets

    @property
    def memory_bytes(self) -> int:
        """Feature memory the run may hold (bounded by the cache budget)."""
        return min(self.feature_bytes_per_image * self.n_targets, self.cache_bytes)

    def __str__(self) -> str:
        minutes = self.seconds / 60
        when = f"{self.seconds:.0f} s" if minutes < 2 else f"{minutes:.0f} min"
        return (
            f"about {when} for {self.n_targets} image(s) ({self.seconds_per_target:.1f} s each), "
            f"up to {self.memory_bytes / 2**30:.1f} GiB of cached features"
        )


def default_cache_bytes(device: torch.device) -> int:
    """An eighth of the device's memory, at most 1.5 GiB: re-runs skip the encoder for ~100
    images at full size, and memory stays bounded on stacks of any length."""
    total = 8 * 2**30
    try:
        if device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
        else:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        pass
    return int(min(total // 8, 3 * 2**29))


@dataclass(eq=False)
class _Prepared:
    key: bytes
    hw: tuple[int, int]
    tensor: torch.Tensor


def _label_dtype(max_class: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_class <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _stability(low_res: torch.Tensor, threshold: float, offset: float = 1.0) -> float:
    """IoU of the mask at threshold +/- offset: 1 for a clear-cut mask, low for a hesitant one."""
    inner = (low_res > threshold + offset).sum()
    outer = (low_res > threshold - offset).sum()
    return 1.0 if int(outer) == 0 else float(inner) / float(outer)


def _is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class Sansa:
    """SAM2 with SANSA adapters, with a feature cache so that each image is encoded once.

    Build it with :meth:`from_checkpoints` or :meth:`from_pretrained`. Coordinates are
    row/column pixels, as in napari.
    """

    def __init__(
        self, sam: torch.nn.Module, config: SansaConfig | None = None, info: ModelInfo | None = None
    ) -> None:
        self.config = config or SansaConfig()
        self.device = resolve_device(self.config.device)
        self.sam = sam.to(self.device).eval()
        for parameter in self.sam.parameters():
            parameter.requires_grad_(False)
        self.image_size = int(self.sam.image_size)
        self.info = info or ModelInfo("unknown", (), 0.0)
        budget = (
            self.config.cache_bytes
            if self.config.cache_bytes is not None
            else default_cache_bytes(self.device)
        )
        self.features = FeatureCache(budget)
        self.encoder_passes = 0
        self._encoder_seconds: list[float] = []
        self._memories: dict[bytes, MemoryEntry] = {}
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
            config = SansaConfig(
                device=device or config.device,
                precision=precision or config.precision,
                image_size=config.image_size,
                threshold=config.threshold,
                cache_bytes=config.cache_bytes,
            )
        sam2_source = f"SAM2 checkpoint {Path(sam2_checkpoint).name}"
        adapter_source = f"adapter checkpoint {Path(adapter_checkpoint).name}"
        sam2_state = checkpoints.sam2_weights(
            checkpoints.read_state_dict(sam2_checkpoint, "SAM2 checkpoint"), sam2_source
        )
        size = infer_sam2_size(sam2_state, sam2_source)
        grouped = checkpoints.adapter_weights(
            checkpoints.read_state_dict(adapter_checkpoint, "SANSA adapter"), adapter_source
        )
        layout = infer_layout(grouped, adapter_source)
        sam = build_sam2(size, config.image_size)
        checkpoints.load_sam2_weights(sam, sam2_state, sam2_source)
        del sam2_state
        attach_adapters(sam, layout, size.name, adapter_source)
        for index, adapter in adapter_modules(sam).items():
            try:
                adapter.load_state_dict(grouped[index], strict=True)
            except RuntimeError as exc:
                raise SansaError(
                    f"{adapter_source}: the adapter of block {index} does not fit "
                    f"({str(exc).splitlines()[-1].strip()})."
                ) from None
        info = ModelInfo(
            sam2_size=size.name,
            adapter_blocks=tuple(layout.blocks),
            channel_factor=layout.channel_factor(block_input_widths(sam)),
            sam2_checkpoint=str(sam2_checkpoint),
            adapter_checkpoint=str(adapter_checkpoint),
            name=name,
        )
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
        from .weights import fetch_model

        sam2_path, adapter_path = fetch_model(name, cache_dir=cache_dir, progress=progress)
        return cls.from_checkpoints(
            sam2_path, adapter_path, device=device, precision=precision, config=config, name=name
        )

    # ----------------------------------------------------------------- encoding
    def _autocast(self):
        return autocast(self.device, self.config.precision)

    def _prepare(self, image: ImageLike) -> _Prepared:
        image = as_image(image)
        hw = image_hw(image)
        tensor = model_input(to_rgb01(image), self.image_size)
        return _Prepared(content_key(tensor), hw, tensor)

    def _features(self, prepared: _Prepared) -> ImageFeatures:
        cached = self.features.get(prepared.key)
        if cached is not None:
            return cached
        start = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            out = self.sam.forward_image(prepared.tensor.to(self.device))
        self._sync()
        self._encoder_seconds.append(time.perf_counter() - start)
        self.encoder_passes += 1
        fpn = out["backbone_fpn"]
        if self._position is None:
            self._position = out["vision_pos_enc"][-1][:1]
        features = ImageFeatures((fpn[0], fpn[1]), fpn[2])
        self.features.put(prepared.key, features)
        return features

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def estimate(self, references: Sequence[Reference] | Reference, n_targets: int) -> Estimate:
        """Time and memory for ``n_targets`` targets, measured on the references (no extra encoder pass)."""
        with self._lock:
            banks = self._class_banks(references)
            refs = [references] if isinstance(references, Reference) else list(references)
            feats = self._features(self._prepare(refs[0].image))
            bank = next(iter(banks.values()))
            start = time.perf_counter()
            with torch.inference_mode(), self._autocast():
                decode_target(self.sam, feats, self._position, len(bank), bank)
            self._sync()
            heads = time.perf_counter() - start
        encoder = statistics.median(self._encoder_seconds)
        per_target = encoder + heads * len(banks)
        return Estimate(n_targets, per_target, feats.nbytes, self.features.max_bytes or 0)

    def encode(self, image: ImageLike) -> ImageFeatures:
        """Encode an image now (or take it from the cache), e.g. to prepare targets ahead."""
        with self._lock:
            return self._features(self._prepare(image))

    # ----------------------------------------------------------------- references
    def _reference_memory(self, prepared: _Prepared, prompt: ClassPrompt) -> MemoryEntry:
        key = prepared.key + prompt_digest(prompt)
        entry = self._memories.get(key)
        if entry is not None:
            return entry
        feats = self._features(prepared)
        with torch.inference_mode(), self._autocast():
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
        return entry

    def _class_banks(self, references: Sequence[Reference]) -> dict[int, dict[int, MemoryEntry]]:
        if isinstance(references, Reference):
            references = [references]
        references = list(references)
        if not references:
            raise SansaError("No references: annotate at least one image.")
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
    def _predict(
        self,
        prepared: _Prepared,
        banks: Mapping[int, dict[int, MemoryEntry]],
        frames: Mapping[int, int],
        remember: bool,
    ) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, float]]:
        feats = self._features(prepared)
        threshold = self.config.threshold
        logits: dict[int, np.ndarray] = {}
        scores: dict[int, float] = {}
        with torch.inference_mode(), self._autocast():
            for class_id, bank in banks.items():
                frame = frames[class_id]
                decoded = decode_target(self.sam, feats, self._position, frame, bank)
                if remember:
                    bank[frame] = encode_memory(self.sam, feats, decoded.high_res, decoded.obj_ptr)
                    window = max(self.sam.num_maskmem, self.sam.max_obj_ptrs_in_encoder)
                    for old in [k for k in bank if 0 < k <= frame - window]:
                        del bank[old]
                full = F.interpolate(
                    decoded.low_res.float(), size=prepared.hw, mode="bilinear", align_corners=False
                )
                logits[class_id] = full[0, 0].cpu().numpy()
                scores[class_id] = float(
                    np.clip(decoded.iou * _stability(decoded.low_res.float(), threshold), 0, 1)
                )
        class_ids = list(logits)
        stacked = np.stack([logits[c] for c in class_ids])
        best = stacked.argmax(axis=0)
        foreground = np.take_along_axis(stacked, best[None], axis=0)[0] > threshold
        lookup = np.asarray(class_ids, dtype=_label_dtype(max(class_ids)))
        labels = np.where(foreground, lookup[best], 0).astype(lookup.dtype)
        return labels, logits, scores

    def propagate(
        self,
        references: Sequence[Reference] | Reference,
        targets: Iterable[ImageLike],
        *,
        sequential: bool = False,
        cancel: Cancel = None,
        progress: Progress = None,
        on_error: OnError = None,
    ) -> Iterator[Prediction]:
        """Segment each target with the classes annotated on the references, one at a time.

        Targets are independent unless ``sequential``, where each target's prediction also
        becomes memory for the next (as SAM2 tracks video). Stop early by breaking out of the
        loop or with ``cancel`` (an Event or a callable), checked between targets;
        ``progress(done, total)`` is called after each target. A target that cannot be
        segmented (bad data, out of memory) raises a :class:`SansaError`, or, with
        ``on_error(index, error)``, is reported there and skipped while the others go on.
        """
        total = len(targets) if hasattr(targets, "__len__") else None
        with self._lock:
            banks = self._class_banks(references)
        if progress is not None:
            progress(0, total)
        shots = {c: len(bank) for c, bank in banks.items()}
        if sequential:  # targets extend the pseudo-video, so each class keeps its own bank
            banks = {c: dict(bank) for c, bank in banks.items()}
        for index, target in enumerate(targets):
            if _is_cancelled(cancel):
                return
            frames = {c: shots[c] + (index if sequential else 0) for c in banks}
            try:
                with self._lock:
                    prepared = self._prepare(target)
                    labels, logits, scores = self._predict_or_explain(prepared, banks, frames, sequential)
            except SansaError as exc:
                if on_error is None:
                    raise
                on_error(index, exc)
                if progress is not None:
                    progress(index + 1, total)
                continue
            if progress is not None:
                progress(index + 1, total)
            yield Prediction(index, labels, logits, scores)

    def _predict_or_explain(self, prepared, banks, frames, remember):
        """Predict; after running out of GPU memory, free the cache and try once more."""
        for attempt in (1, 2):
            try:
                return self._predict(prepared, banks, frames, remember=remember)
            except torch.OutOfMemoryError:
                if self.device.type == "cuda" and attempt == 1:
                    self.features.clear()
                    torch.cuda.empty_cache()
                    continue
                raise SansaError(
                    f"Out of {self.device.type.upper()} memory on an image of {prepared.hw[0]}x{prepared.hw[1]}: {OOM_ADVICE}."
                ) from None
            except RuntimeError as exc:
                if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
                    raise
                raise SansaError(
                    f"Out of memory on an image of {prepared.hw[0]}x{prepared.hw[1]}: {OOM_ADVICE}."
                ) from None
        raise AssertionError("unreachable")

    def segment(
        self,
        references: Sequence[Reference] | Reference,
        targets: Iterable[ImageLike],
        *,
        sequential: bool = False,
        cancel: Cancel = None,
        progress: Progress = None,
        on_error: OnError = None,
    ) -> list[Prediction]:
        """:meth:`propagate`, collected into a list."""
        options = {"sequential": sequential, "cancel": cancel, "progress": progress, "on_error": on_error}
        return list(self.propagate(references, targets, **options))

    def clear_cache(self) -> None:
        """Forget cached features and reference memories."""
        with self._lock:
            self.features.clear()
            self._memories.clear()
