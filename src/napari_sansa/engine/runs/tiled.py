"""Segment one large image tile by tile, in memory bounded by a band of tiles, not the image.

Tiles go through the model in batches, raster order, while the next ones are read. Each tile's
logits are upsampled to its window and added, weighted (:meth:`TileGrid.weights`), into a band
one tile high; when a row of tiles is done, the rows no later tile touches are final: their
labels are written into the output (a numpy array, a memory map, a zarr array) and dropped.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_sansa.engine.callbacks import OnTileError
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image
from napari_sansa.engine.inputs.large_images import LargeImage
from napari_sansa.engine.inputs.prompts import label_dtype
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import MemoryEntry, decode_target
from napari_sansa.engine.runs.tiling import Tile, TileGrid
from napari_sansa.engine.runtime.prefetch import Prefetch
from napari_sansa.engine.runtime.runtime import PreparedImage, Runtime

Output = Callable[[int, tuple[int, int], np.dtype], Any]
OnTile = Callable[[int, int, int], None]


@dataclass(eq=False)
class TiledTarget:
    """A target that is segmented in tiles: its pixels, read when a tile needs them."""

    image: LargeImage
    grid: TileGrid
    scale: float

    @property
    def hw(self) -> tuple[int, int]:
        return self.grid.shape


class _Band:
    """Weighted logit sums of a band of rows as wide as the image, one tile high."""

    def __init__(self, classes: int, height: int, width: int) -> None:
        self.top = 0
        self.sums = np.zeros((classes, height, width), np.float32)
        self.weights = np.zeros((height, width), np.float32)

    def add(self, tile: Tile, logits: np.ndarray, weights: np.ndarray) -> None:
        rows = slice(tile.rows.start - self.top, tile.rows.stop - self.top)
        self.sums[:, rows, tile.cols] += logits * weights
        self.weights[rows, tile.cols] += weights

    def take(self, until: int, block: int = 4096) -> Iterator[tuple[slice, slice, np.ndarray]]:
        """Blended logits of the rows from the band's top to ``until``, a block of columns at a
        time (so that the copies stay small on wide images); then those rows leave the band."""
        n = until - self.top
        rows = slice(self.top, until)
        width = self.weights.shape[1]
        for start in range(0, width, block):
            cols = slice(start, min(start + block, width))
            weights = self.weights[:n, cols]
            blended = np.full((self.sums.shape[0], n, cols.stop - cols.start), -np.inf, np.float32)
            np.divide(self.sums[:, :n, cols], weights, out=blended, where=weights > 0)  # -inf: not read
            yield rows, cols, blended
        keep = self.weights.shape[0] - n  # rows the next row of tiles still adds to
        self.sums[:, :keep] = self.sums[:, n:]
        self.sums[:, keep:] = 0
        self.weights[:keep] = self.weights[n:]
        self.weights[keep:] = 0
        self.top = until


@dataclass
class _Scores:
    """A class's confidence over tiles, weighted by the pixels each tile gives the class."""

    weighted: float = 0.0
    area: float = 0.0
    plain: list[float] = field(default_factory=list)

    def add(self, score: float, area: int) -> None:
        self.weighted += score * area
        self.area += area
        self.plain.append(score)

    @property
    def value(self) -> float:
        if self.area > 0:
            return self.weighted / self.area
        return float(np.mean(self.plain)) if self.plain else 0.0


def _logit_store(shape: tuple[int, int]) -> np.ndarray:
    """A float16 array on disk (a temporary file, gone when the array is), written as tiles end."""
    with tempfile.TemporaryFile(prefix="sansa-logits-") as handle:  # the map outlives the handle
        return np.memmap(handle, dtype=np.float16, mode="w+", shape=shape)


def run_tiled(
    runtime: Runtime,
    index: int,
    target: TiledTarget,
    banks: Mapping[int, dict[int, MemoryEntry]],
    frames: Mapping[int, int],
    *,
    output: Output | None,
    keep_logits: bool,
    on_tile: OnTile | None,
    on_tile_error: OnTileError,
    cancelled: Callable[[], bool],
) -> tuple[Any, dict[int, Any], dict[int, float], tuple] | None:
    """Labels, logits (if kept), scores and the windows that could not be read, of a tiled
    target; None when cancelled."""
    grid = target.grid
    class_ids = list(banks)
    dtype = label_dtype(class_ids)
    labels = output(index, grid.shape, dtype) if output is not None else np.zeros(grid.shape, dtype)
    logits = {c: _logit_store(grid.shape) for c in class_ids} if keep_logits else {}
    band = _Band(len(class_ids), grid.tile[0], grid.shape[1])
    scores = {c: _Scores() for c in class_ids}
    missing: list[tuple[slice, slice]] = []
    tiles = grid.tiles
    lookup = np.asarray(class_ids)
    threshold = runtime.config.threshold
    last_col = len(grid.col_starts) - 1
    row_ends = list(grid.row_starts[1:]) + [grid.shape[0]]

    def read(tile: Tile):
        pixels = target.image.read(tile.rows, tile.cols, target.scale)
        return runtime.prepare(Image(pixels, contrast_limits=(0.0, 1.0)), load=True)

    def finish_row(tile: Tile) -> None:
        row = tile.index // len(grid.col_starts)
        for rows, cols, blended in band.take(row_ends[row]):
            best = blended.argmax(axis=0)
            top = np.take_along_axis(blended, best[None], axis=0)[0]
            try:
                labels[rows, cols] = np.where(top > threshold, lookup[best], 0).astype(dtype)
                for k, c in enumerate(class_ids):
                    if keep_logits:
                        logits[c][rows, cols] = blended[k]
            except OSError as exc:  # a full disk, a store gone away: the target cannot be completed
                raise SansaError(
                    f"Could not write the labels of rows {rows.start}-{rows.stop}: {exc}"
                ) from exc

    done = 0
    workers = 4 if runtime.device.type == "cuda" else 1  # reading keeps up with a GPU
    with Prefetch(read, tiles, ahead=2 * runtime.batch_size, workers=workers) as queue:
        for chunk in queue.chunks(runtime.batch_size):
            if cancelled():
                return None
            ready = []
            for k, future in chunk:
                try:
                    ready.append((tiles[k], future.result()))
                except SansaError as exc:
                    tile = tiles[k]
                    missing.append((tile.rows, tile.cols))
                    error = SansaError(f"Tile {tile.index + 1} of {len(tiles)}: {exc}")
                    if on_tile_error is None:
                        raise error from exc
                    on_tile_error(index, error)
            if ready:
                with runtime.lock:
                    batch = functools.partial(_predict, runtime, [p for _, p in ready], banks, frames)
                    outcome = runtime.explaining_oom(grid.tile, batch)
                for (tile, _), (tile_logits, tile_scores) in zip(ready, outcome):
                    up = F.interpolate(
                        tile_logits[None], size=tile.shape, mode="bilinear", align_corners=False
                    )[0]
                    up = up.numpy()
                    band.add(tile, up, grid.weights(tile))
                    for k, c in enumerate(class_ids):
                        scores[c].add(tile_scores[k], int(np.count_nonzero(up[k] > threshold)))
            for k, _ in chunk:
                done += 1
                if k % len(grid.col_starts) == last_col:
                    finish_row(tiles[k])
                if on_tile is not None:
                    on_tile(index, done, len(tiles))
    return labels, logits, {c: s.value for c, s in scores.items()}, tuple(missing)


def _predict(
    runtime: Runtime, prepared: list[PreparedImage], banks, frames
) -> list[tuple[torch.Tensor, list[float]]]:
    """Each tile's low-resolution logits ``(classes, h, w)`` on the host, and its class scores."""
    feats = ImageFeatures.stack(runtime.features_many(prepared))
    per_class = []
    with torch.inference_mode():
        for class_id, bank in banks.items():
            decoded = decode_target(runtime.sam, feats, runtime.position, frames[class_id], bank)
            per_class.append(runtime.scored(decoded))
    low_res = torch.cat([low for low, _ in per_class], dim=1).float().cpu()
    scores = torch.stack([score for _, score in per_class], dim=1).cpu().tolist()
    return [(low_res[i], scores[i]) for i in range(len(prepared))]
