"""The engine's inner interface: one object that runs the network on images.

A :class:`Runtime` holds the network, its configuration, the feature caches (each image goes
through the encoder once), the reference memories and the lock that serialises the heads.
Every run (:mod:`~napari_sansa.engine.runs.predicting`, ``stack``, ``tiled``) and the objects
(:mod:`~napari_sansa.engine.objects.from_prediction`) use it through these public methods;
:class:`~napari_sansa.engine.model.Sansa` is the user's facade that owns one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_sansa.engine.config import SansaConfig, resolve_device, resolve_precision
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image, Multiscale, as_image, image_hw, model_input, to_rgb01
from napari_sansa.engine.inputs.prompts import (
    ClassPrompt,
    DensePrompt,
    label_dtype,
    mask_in_model_frame,
    prompt_digest,
    sam_point_inputs,
)
from napari_sansa.engine.network.activations import in_place_activations
from napari_sansa.engine.network.compiling import compile_encoder
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import (
    Decoded,
    MemoryEntry,
    decode_mask_prompt,
    decode_point_prompt,
    encode_memory,
)
from napari_sansa.engine.network.precision import cast_model, model_dtype
from napari_sansa.engine.network.trims import share_position_encodings
from napari_sansa.engine.network.weights import cache_dir
from napari_sansa.engine.runtime.allocator import keep_freed_memory, release_kept_memory
from napari_sansa.engine.runtime.disk_cache import DiskFeatureCache, default_disk_bytes
from napari_sansa.engine.runtime.feature_cache import FeatureCache, default_cache_bytes, image_key

log = logging.getLogger(__name__)

T = TypeVar("T")
ImageLike = Image | Multiscale | np.ndarray
OOM_ADVICE = "choose precision bf16, a smaller input size, or device cpu"

MAX_MEMORIES = 256  # reference memories kept for reuse (about 2 MiB each at input 1024), oldest dropped


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An image checked and keyed for the feature cache; ``tensor`` is its model input, made only
    if the encoder needs it (and dropped before the image is kept in a result)."""

    key: bytes
    hw: tuple[int, int]
    image: Image
    tensor: torch.Tensor | None = None

    def without_input(self) -> PreparedImage:
        """The same image without its model input (a few MB that a kept result must not hold)."""
        return replace(self, tensor=None)


class Outcome(NamedTuple):
    """One target's labels ``(H, W)``, its per-class logits at its size, and per-class scores."""

    labels: np.ndarray
    logits: dict[int, np.ndarray]
    scores: dict[int, float]


class HasRuntime(Protocol):
    """Anything that owns a runtime (e.g. :class:`~napari_sansa.engine.model.Sansa`)."""

    @property
    def runtime(self) -> Runtime: ...


def _stability(low_res: torch.Tensor, threshold: float, offset: float = 1.0) -> torch.Tensor:
    """Per image, IoU of the mask at threshold +/- offset: 1 for a clear-cut mask, low for a hesitant one."""
    inner = (low_res > threshold + offset).flatten(1).sum(1)
    outer = (low_res > threshold - offset).flatten(1).sum(1)
    return torch.where(outer == 0, 1.0, inner.double() / outer.clamp(min=1).double())


class Runtime:
    """SAM2 with SANSA adapters on a device, with the caches that make each image's encoder
    pass and each reference's memory happen once, and the lock that guards them."""

    def __init__(self, sam: torch.nn.Module, config: SansaConfig | None = None) -> None:
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
        budget = self.config.cache_bytes
        self.feature_cache = FeatureCache(
            default_cache_bytes(self.device) if budget is None else budget, self._disk_cache()
        )
        self.memories: OrderedDict[bytes, MemoryEntry] = OrderedDict()  # by image and prompt, oldest first
        self.encoder_passes = 0
        self.encoder_seconds: list[float] = []  # single-image passes, timed for estimates
        self.lock = threading.RLock()  # the heads, the reference memories and the position encoding
        self._position: torch.Tensor | None = None

    def _disk_cache(self) -> DiskFeatureCache | None:
        if self.config.disk_cache_bytes == 0:
            return None
        if self.config.disk_cache_dir is not None:
            root = Path(self.config.disk_cache_dir).expanduser()
        else:
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

    @property
    def position(self) -> torch.Tensor:
        """The top-level features' position encoding (known after the first encoder pass)."""
        if self._position is None:
            raise RuntimeError("no image has been encoded yet")
        return self._position

    def learn_position(self, position: torch.Tensor) -> None:
        """Keep the top-level position encoding an encoder pass gave, if it is not known yet
        (every pass gives the same one; adaptation's split encoder makes passes too)."""
        if self._position is None:
            self._position = position.to(self.dtype)

    # ----------------------------------------------------------------- images and features
    def prepare(self, image: ImageLike, *, load: bool = False) -> PreparedImage:
        """Check an image and key it; with ``load``, also make its model input unless it is cached
        (run in prefetch workers, so that pre-processing overlaps the model)."""
        image = as_image(image)
        prepared = PreparedImage(image_key(image, self.image_size), image_hw(image), image)
        if load and prepared.key not in self.feature_cache:
            prepared = replace(prepared, tensor=self._input(prepared))
        return prepared

    def _input(self, prepared: PreparedImage) -> torch.Tensor:
        if prepared.tensor is not None:
            return prepared.tensor
        return model_input(to_rgb01(prepared.image), self.image_size, self.dtype)

    def features(self, prepared: PreparedImage) -> ImageFeatures:
        """An image's features, from the cache or from an encoder pass."""
        return self.features_many([prepared])[0]

    def features_many(self, prepared: Sequence[PreparedImage]) -> list[ImageFeatures]:
        """Features of each image, from the cache or from one encoder pass over the missing ones."""
        found: dict[bytes, ImageFeatures] = {}
        missing: dict[bytes, PreparedImage] = {}
        for item in prepared:
            if item.key in found or item.key in missing:
                continue
            cached = self.feature_cache.get(item.key, self.device)
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
                self.sync()
                self.encoder_seconds.append(time.perf_counter() - start)
            self.encoder_passes += len(missing)
            fpn = [level.to(self.dtype) for level in out["backbone_fpn"]]  # the FPN adds in fp32
            self.learn_position(out["vision_pos_enc"][-1][:1])
            batch = ImageFeatures((fpn[0], fpn[1]), fpn[2])
            for index, key in enumerate(missing):
                found[key] = batch if single else batch.item(index)
                self.feature_cache.put(key, found[key])
        return [found[item.key] for item in prepared]

    def sync(self) -> None:
        """Wait for the device (for timings)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ----------------------------------------------------------------- heads
    def reference_memory(self, prepared: PreparedImage, prompt: ClassPrompt) -> MemoryEntry:
        """The memory a prompted reference gives its class, computed once per image and prompt."""
        key = prepared.key + prompt_digest(prompt)
        entry = self.memories.get(key)
        if entry is not None:
            self.memories.move_to_end(key)
            return entry
        feats = self.features(prepared)
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
        self.memories[key] = entry
        while len(self.memories) > MAX_MEMORIES:  # a live preview makes one per stroke
            self.memories.popitem(last=False)
        return entry

    def scored(self, decoded: Decoded) -> tuple[torch.Tensor, torch.Tensor]:
        """A decoded batch's low-resolution logits and confidence (predicted IoU x stability)."""
        low_res = decoded.low_res.float()
        stability = _stability(low_res, self.config.threshold)
        return low_res, (decoded.iou.double() * stability).clamp(0, 1)

    def outcomes(
        self,
        prepared: Sequence[PreparedImage],
        low_res: Mapping[int, torch.Tensor],
        scores: Mapping[int, torch.Tensor],
    ) -> list[Outcome]:
        """Labels, logits at each image's size and scores, from each class's batched low-res logits;
        the batch stays on the device until the labels are made."""
        threshold = self.config.threshold
        class_ids = list(low_res)
        dtype = label_dtype(class_ids)
        lookup = torch.tensor(class_ids, device=self.device)
        on_device = []
        with torch.inference_mode():
            for index, item in enumerate(prepared):
                full = torch.cat(
                    [
                        F.interpolate(
                            low_res[c][index : index + 1], size=item.hw, mode="bilinear", align_corners=False
                        )
                        for c in class_ids
                    ],
                    dim=1,
                )[0]
                best = full.argmax(dim=0)
                labels = torch.where(full.amax(dim=0) > threshold, lookup[best], 0)
                on_device.append((labels, full))
        results = []
        for index, (labels, full) in enumerate(on_device):
            full = full.cpu().numpy()
            results.append(
                Outcome(
                    labels.cpu().numpy().astype(dtype),
                    {c: full[k] for k, c in enumerate(class_ids)},
                    {c: float(scores[c][index]) for c in class_ids},
                )
            )
        return results

    def explaining_oom(self, hw: tuple[int, int], run: Callable[[], T]) -> T:
        """``run()``; after running out of GPU memory, free the cache and try once more, then
        raise a SansaError that says what to change."""
        for attempt in (1, 2):
            try:
                return run()
            except torch.OutOfMemoryError:
                if self.device.type == "cuda" and attempt == 1:
                    self.feature_cache.clear()
                    torch.cuda.empty_cache()
                    continue
                raise SansaError(
                    f"Out of {self.device.type.upper()} memory on an image of {hw[0]}x{hw[1]}: {OOM_ADVICE}."
                ) from None
            except RuntimeError as exc:
                if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
                    raise
                raise SansaError(f"Out of memory on an image of {hw[0]}x{hw[1]}: {OOM_ADVICE}.") from None
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- lifetime
    def clear(self) -> None:
        """Forget cached features (in memory and on disk) and reference memories, and give the
        memory kept for reuse back to the system."""
        with self.lock:
            self.feature_cache.clear()
            self.memories.clear()
        release_kept_memory()

    def close(self) -> None:
        """Free the caches and delete the disk cache's folder now (also done when garbage-collected)."""
        self.clear()
        if self.feature_cache.disk is not None:
            self.feature_cache.disk.close()
