"""Targets through the heads: a batch's labels, logits and scores, a chunk of targets with its
failures kept apart, and out-of-memory errors turned into advice. Part of :class:`~.model.Sansa`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.prompts import label_dtype
from napari_sansa.engine.runs.memory import Decoded, MemoryEntry, decode_target, encode_memory
from napari_sansa.engine.runs.results import Prediction
from napari_sansa.engine.runs.tiled import TiledTarget, run_tiled
from napari_sansa.engine.runtime.features import ImageFeatures

if TYPE_CHECKING:
    from napari_sansa.engine.model import _Prepared

T = TypeVar("T")
OOM_ADVICE = "choose precision bf16, a smaller input size, or device cpu"
_CANCELLED = object()


def _stability(low_res: torch.Tensor, threshold: float, offset: float = 1.0) -> torch.Tensor:
    """Per image, IoU of the mask at threshold +/- offset: 1 for a clear-cut mask, low for a hesitant one."""
    inner = (low_res > threshold + offset).flatten(1).sum(1)
    outer = (low_res > threshold - offset).flatten(1).sum(1)
    return torch.where(outer == 0, 1.0, inner.double() / outer.clamp(min=1).double())


class Predicting:
    """What :class:`~.model.Sansa` does with prepared targets once its references are memory."""

    def _predict_many(
        self,
        prepared: Sequence[_Prepared],
        banks: Mapping[int, dict[int, MemoryEntry]],
        frames: Mapping[int, int],
        remember: bool,
    ) -> list[tuple[np.ndarray, dict[int, np.ndarray], dict[int, float]]]:
        """Labels, logits and scores of a batch of targets; the batch stays on the device
        from the encoder to the labels, and only the results come back to the host."""
        if remember and len(prepared) != 1:
            raise ValueError("sequential targets are predicted one at a time")
        feats = ImageFeatures.stack(self._features_many(prepared))
        low_res: dict[int, torch.Tensor] = {}
        scores: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for class_id, bank in banks.items():
                frame = frames[class_id]
                decoded = decode_target(self.sam, feats, self._position, frame, bank)
                if remember:
                    bank[frame] = encode_memory(self.sam, feats, decoded.high_res, decoded.obj_ptr)
                    window = max(self.sam.num_maskmem, self.sam.max_obj_ptrs_in_encoder)
                    for old in [k for k in bank if 0 < k <= frame - window]:
                        del bank[old]
                low_res[class_id], scores[class_id] = self._scored(decoded)
        return self._finish(prepared, low_res, scores)

    def _scored(self, decoded: Decoded) -> tuple[torch.Tensor, torch.Tensor]:
        """A decoded batch's low-resolution logits and confidence (predicted IoU x stability)."""
        low_res = decoded.low_res.float()
        stability = _stability(low_res, self.config.threshold)
        return low_res, (decoded.iou.double() * stability).clamp(0, 1)

    def _finish(
        self,
        prepared: Sequence[_Prepared],
        low_res: Mapping[int, torch.Tensor],
        scores: Mapping[int, torch.Tensor],
    ) -> list[tuple[np.ndarray, dict[int, np.ndarray], dict[int, float]]]:
        """Labels, logits at each image's size and scores, from each class's batched low-res logits."""
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
                (
                    labels.cpu().numpy().astype(dtype),
                    {c: full[k] for k, c in enumerate(class_ids)},
                    {c: float(scores[c][index]) for c in class_ids},
                )
            )
        return results

    def _run_tiled(self, index: int, target: TiledTarget, banks, shots, tiling) -> object:
        """A tiled target's Prediction, its SansaError, or _CANCELLED."""
        frames = {c: shots[c] for c in banks}
        try:
            result = run_tiled(self, index, target, banks, frames, **tiling)
        except SansaError as exc:
            return exc
        if result is None:
            return _CANCELLED
        labels, logits, scores, missing = result
        return Prediction(index, labels, logits, scores, self, None, tiles=len(target.grid), missing=missing)

    def _run_chunk(self, chunk, banks, shots, sequential, tiling):
        """(index, result or SansaError) for each target of a chunk, in order; a failing batch
        is run again one target at a time, so that only the failing target is reported."""
        outcomes: dict[int, object] = {}
        ready: list[tuple[int, _Prepared]] = []
        for index, future in chunk:
            try:
                item = future.result()
            except SansaError as exc:
                outcomes[index] = exc
                continue
            if isinstance(item, TiledTarget):
                outcomes[index] = self._run_tiled(index, item, banks, shots, tiling)
                if outcomes[index] is _CANCELLED:
                    return sorted(outcomes.items(), key=lambda pair: pair[0])
            else:
                ready.append((index, item))
        groups = [ready] if ready else []
        while groups:
            group = groups.pop(0)
            frames = {c: shots[c] + (group[0][0] if sequential else 0) for c in banks}
            try:
                with self._lock:
                    results = self._predict_or_explain([p for _, p in group], banks, frames, sequential)
            except SansaError as exc:
                if len(group) > 1:
                    groups = [[item] for item in group] + groups
                    continue
                outcomes[group[0][0]] = exc
                continue
            outcomes.update(
                {
                    index: (*result, self, replace(p, tensor=None))
                    for (index, p), result in zip(group, results)
                }
            )
        return sorted(outcomes.items(), key=lambda pair: pair[0])

    def _predict_or_explain(self, prepared, banks, frames, remember):
        """Predict; after running out of GPU memory, free the cache and try once more."""
        return self._explaining_oom(
            prepared[0].hw, lambda: self._predict_many(prepared, banks, frames, remember=remember)
        )

    def _explaining_oom(self, hw: tuple[int, int], run: Callable[[], T]) -> T:
        """``run()``; after running out of GPU memory, free the cache and try once more, then
        raise a SansaError that says what to change."""
        for attempt in (1, 2):
            try:
                return run()
            except torch.OutOfMemoryError:
                if self.device.type == "cuda" and attempt == 1:
                    self.features.clear()
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
