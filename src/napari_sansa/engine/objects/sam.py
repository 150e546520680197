"""Objects outlined by SAM2 itself: each watershed seed prompts SAM2's mask decoder.

The image's features come from the model's feature cache (no encoder pass); the prompts
(the seed region's box and the point deepest inside it) go through the decoder many at a time,
without memory, as SAM2 decodes clicks on a reference. Masks are kept within their class
region grown by :data:`GROW_PX` pixels (never into another class), duplicates are removed by
non-maximum suppression on IoU, and each object is scored by SAM2's predicted IoU. Where SAM2
gives no usable mask for a seed, the seed region itself is the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_sansa.engine.inputs.prompts import (
    BOX_BOTTOM_RIGHT,
    BOX_TOP_LEFT,
    POSITIVE,
    SparsePrompt,
    sam_point_inputs,
)
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import decode_point_prompt

GROW_PX = 3  # a mask may reach this far past its class region (SAM2 outlines a little wider)
NMS_IOU = 0.5  # masks overlapping more than this are one object: the higher predicted IoU stays
DECODE_BYTES = 2**30  # decoder working memory per call; sets how many prompts go together


@dataclass(frozen=True)
class Seed:
    """A watershed region of one class: its box (half-open) and its deepest point."""

    class_id: int
    box: tuple[int, int, int, int]  # r0, c0, r1, c1
    point: tuple[int, int]
    region: np.ndarray  # (r1 - r0, c1 - c0) bool: the seed's pixels in its box


def seeds_of(class_id: int, mask: np.ndarray, seeds: np.ndarray) -> list[Seed]:
    """The seeds of one class from its watershed labels."""
    from scipy import ndimage

    n = int(seeds.max())
    if n == 0:
        return []
    distance = ndimage.distance_transform_edt(mask)
    index = np.arange(1, n + 1)
    points = ndimage.maximum_position(distance, seeds, index)
    out = []
    for label, sl, point in zip(index, ndimage.find_objects(seeds), points):
        if sl is None:
            continue
        box = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
        out.append(Seed(class_id, box, (int(point[0]), int(point[1])), seeds[sl] == label))
    return out


def _crop(seed: Seed, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where the seed's mask may lie: its box grown by its own size (and the margin) each way."""
    r0, c0, r1, c1 = seed.box
    dr, dc = r1 - r0 + GROW_PX, c1 - c0 + GROW_PX
    return max(0, r0 - dr), max(0, c0 - dc), min(hw[0], r1 + dr), min(hw[1], c1 + dc)


def _prompt_inputs(seeds: list[Seed], hw: tuple[int, int], image_size: int) -> dict[str, torch.Tensor]:
    """Box corners and the deepest point of each seed, in SAM's frame, one prompt per row."""
    rows = []
    for seed in seeds:
        r0, c0, r1, c1 = seed.box
        coords = np.array([[r0, c0], [r1 - 1, c1 - 1], seed.point], np.float32)
        labels = np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT, POSITIVE], np.int32)
        rows.append(sam_point_inputs(SparsePrompt(coords, labels), hw, image_size))
    return {key: torch.cat([r[key] for r in rows]) for key in ("point_coords", "point_labels")}


def _sample(low_res: torch.Tensor, crops: list[tuple[int, int, int, int]], hw: tuple[int, int]) -> list:
    """Each mask's logits on its crop of the image, as bilinear resizing to the image would give."""
    height = max(r1 - r0 for r0, _, r1, _ in crops)
    width = max(c1 - c0 for _, c0, _, c1 in crops)
    device = low_res.device
    rows = torch.tensor([r0 for r0, _, _, _ in crops], device=device)[:, None] + torch.arange(
        height, device=device
    )
    cols = torch.tensor([c0 for _, c0, _, _ in crops], device=device)[:, None] + torch.arange(
        width, device=device
    )
    y = (rows.float() + 0.5) / hw[0] * 2 - 1
    x = (cols.float() + 0.5) / hw[1] * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)
    sampled = F.grid_sample(
        low_res.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    positive = (sampled[:, 0] > 0).cpu().numpy()
    return [positive[k, : r1 - r0, : c1 - c0] for k, (r0, c0, r1, c1) in enumerate(crops)]


def _prompts_per_call(feats: ImageFeatures) -> int:
    per_prompt = 4 * sum(t[0].numel() for t in feats.tensors) * 4  # fp32 features and activations
    return int(min(256, max(1, DECODE_BYTES // per_prompt)))


def decode_seeds(sam, feats: ImageFeatures, seeds: list[Seed], hw: tuple[int, int], image_size: int):
    """SAM2's mask (on its crop) and predicted IoU for each seed, in the order given."""
    crops = [_crop(s, hw) for s in seeds]
    order = sorted(
        range(len(seeds)), key=lambda k: ((crops[k][2] - crops[k][0]) * (crops[k][3] - crops[k][1]), k)
    )
    step = _prompts_per_call(feats)
    masks: list = [None] * len(seeds)
    ious = np.zeros(len(seeds))
    device = feats.top.device
    for start in range(0, len(order), step):
        chunk = order[start : start + step]
        b = len(chunk)
        batch = ImageFeatures(
            tuple(t.expand(b, -1, -1, -1) for t in feats.high_res), feats.top.expand(b, -1, -1, -1)
        )
        inputs = _prompt_inputs([seeds[k] for k in chunk], hw, image_size)
        decoded = decode_point_prompt(sam, batch, {k: v.to(device) for k, v in inputs.items()})
        for k, mask, iou in zip(
            chunk, _sample(decoded.low_res, [crops[k] for k in chunk], hw), decoded.iou.float().cpu().numpy()
        ):
            masks[k], ious[k] = mask, float(iou)
    return crops, masks, ious


def _iou(a: tuple, b: tuple) -> float:
    """IoU of two masks given as (crop, mask on the crop)."""
    (ar0, ac0, ar1, ac1), ma = a
    (br0, bc0, br1, bc1), mb = b
    r0, c0, r1, c1 = max(ar0, br0), max(ac0, bc0), min(ar1, br1), min(ac1, bc1)
    if r0 >= r1 or c0 >= c1:
        return 0.0
    inter = np.count_nonzero(
        ma[r0 - ar0 : r1 - ar0, c0 - ac0 : c1 - ac0] & mb[r0 - br0 : r1 - br0, c0 - bc0 : c1 - bc0]
    )
    union = np.count_nonzero(ma) + np.count_nonzero(mb) - inter
    return inter / union if union else 0.0


def _non_maximum_suppression(candidates: list) -> list[int]:
    """Indices of the masks to keep: by predicted IoU, each unless it repeats a kept one."""
    boxes = np.array([c[1] for c in candidates], np.int64).reshape(-1, 4)
    kept: list[int] = []
    for k in sorted(range(len(candidates)), key=lambda k: (-candidates[k][3], k)):
        if kept:
            others = boxes[kept]
            touching = (
                (others[:, 0] < boxes[k, 2])
                & (others[:, 2] > boxes[k, 0])
                & (others[:, 1] < boxes[k, 3])
                & (others[:, 3] > boxes[k, 1])
            )
            near = [kept[j] for j in np.flatnonzero(touching)]
            if any(_iou(candidates[k][1:3], candidates[j][1:3]) > NMS_IOU for j in near):
                continue
        kept.append(k)
    return kept


def sam_instances(
    sam,
    feats: ImageFeatures,
    labels: np.ndarray,
    seeds: Mapping[int, np.ndarray],
    image_size: int,
    min_size: int,
) -> tuple[np.ndarray, dict[int, int], dict[int, float]]:
    """Objects of every class from SAM2's decoder: (int32 labels, label -> class, label -> score).

    ``labels`` are the prediction's class labels, ``seeds`` each class's watershed labels.
    Call inside ``torch.inference_mode``.
    """
    from scipy import ndimage

    hw = labels.shape
    all_seeds = [s for c, ws in seeds.items() for s in seeds_of(c, labels == c, ws)]
    out = np.zeros(hw, np.int32)
    if not all_seeds:
        return out, {}, {}
    allowed = {
        c: (ndimage.distance_transform_edt(labels != c) <= GROW_PX) & ((labels == 0) | (labels == c))
        for c in seeds
    }
    crops, masks, ious = decode_seeds(sam, feats, all_seeds, hw, image_size)
    candidates = []
    for seed, crop, mask, iou in zip(all_seeds, crops, masks, ious):
        r0, c0, r1, c1 = crop
        mask = mask & allowed[seed.class_id][r0:r1, c0:c1]
        if np.count_nonzero(mask) < max(min_size, 1):  # no usable mask: the seed region stands
            crop, mask = seed.box, seed.region
        candidates.append((seed.class_id, crop, mask, float(iou)))
    kept = _non_maximum_suppression(candidates)
    kept.sort()  # ids in seed order
    classes = {label: candidates[k][0] for label, k in enumerate(kept, start=1)}
    scores = {label: candidates[k][3] for label, k in enumerate(kept, start=1)}
    for label in sorted(scores, key=lambda lab: (-scores[lab], lab)):  # where masks overlap, the surer wins
        _, (r0, c0, r1, c1), mask, _ = candidates[kept[label - 1]]
        window = out[r0:r1, c0:c1]
        window[mask & (window == 0)] = label
    sizes = np.bincount(out.ravel(), minlength=len(kept) + 1)
    small = [label for label in classes if sizes[label] < max(min_size, 1)]
    if small:
        out[np.isin(out, small)] = 0
    remaining = sorted(set(classes) - set(small))
    lut = np.zeros(len(kept) + 1, np.int32)
    lut[remaining] = np.arange(1, len(remaining) + 1)
    return (
        lut[out],
        {int(lut[k]): classes[k] for k in remaining},
        {int(lut[k]): scores[k] for k in remaining},
    )
