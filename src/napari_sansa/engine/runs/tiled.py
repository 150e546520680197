"""Segment one large image tile by tile, in memory bounded by the tile, not by the image.

Tiles go through the model in batches, raster order, while the next ones are read. Each tile's
low-resolution logits go to a :class:`~.stitching.Stitcher`, which blends them (weights of
:meth:`TileGrid.weights`) region by region: as soon as a tile is in, the region no later tile
touches is final, its labels are computed a block at a time and written into the output (a numpy
array, a memory map, a zarr array), a row of regions per write while that is small.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from napari_sansa.engine.callbacks import OnTileError
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image
from napari_sansa.engine.inputs.large_images import LargeImage, window_bytes
from napari_sansa.engine.inputs.prompts import label_dtype
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import MemoryEntry, decode_target
from napari_sansa.engine.runs.stitching import RowWrites, Stitcher, stitch_bytes
from napari_sansa.engine.runs.tiling import Tile, TileGrid
from napari_sansa.engine.runtime.allocator import return_free_pages
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
    stitcher = Stitcher(grid, len(class_ids), runtime.config.threshold)
    scores = {c: _Scores() for c in class_ids}
    tile_scores: dict[int, list[float]] = {}  # of tiles still blending
    missing: list[tuple[slice, slice]] = []
    tiles = grid.tiles
    lookup = np.asarray(class_ids)
    threshold = runtime.config.threshold
    last_col = len(grid.col_starts) - 1

    def read(tile: Tile):
        pixels = target.image.read(tile.rows, tile.cols, target.scale)
        return runtime.prepare(Image(pixels, contrast_limits=(0.0, 1.0)), load=True)

    def write(rows: slice, cols: slice, region: np.ndarray) -> None:
        try:
            labels[rows, cols] = region
        except OSError as exc:  # a full disk, a store gone away: the target cannot be completed
            raise SansaError(f"Could not write the labels of rows {rows.start}-{rows.stop}: {exc}") from exc

    writes = RowWrites(write)

    def finish(tile: Tile) -> None:
        """Label the region that ``tile`` completes, and let go of the tiles it was the last for."""
        rows, cols = stitcher.region(tile)
        region = np.empty((rows.stop - rows.start, cols.stop - cols.start), dtype)
        for block, _, blended in stitcher.finish(tile):
            best = blended.argmax(axis=0)
            top = np.take_along_axis(blended, best[None], axis=0)[0]
            region[block.start - rows.start : block.stop - rows.start] = np.where(
                top > threshold, lookup[best], 0
            )
            for k, c in enumerate(class_ids):
                if keep_logits:
                    logits[c][block, cols] = blended[k]
        row_done = tile.index % len(grid.col_starts) == last_col
        writes.add(rows, cols, region, row_done=row_done)
        del region
        for done_tile, areas in stitcher.release(tile):
            for k, c in enumerate(class_ids):
                scores[c].add(tile_scores[done_tile.index][k], int(areas[k]))
            del tile_scores[done_tile.index]
        if tile.index % TRIM_EVERY == TRIM_EVERY - 1:
            return_free_pages()

    done = 0
    workers = 4 if runtime.device.type == "cuda" else 1  # reading keeps up with a GPU
    with Prefetch(read, tiles, ahead=runtime.batch_size, workers=workers) as queue:  # the next chunk
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
                for (tile, _), (tile_logits, scored) in zip(ready, outcome):
                    stitcher.add(tile, tile_logits.numpy())
                    tile_scores[tile.index] = scored
            for k, _ in chunk:
                done += 1
                finish(tiles[k])
                if on_tile is not None:
                    on_tile(index, done, len(tiles))
    return labels, logits, {c: s.value for c, s in scores.items()}, tuple(missing)


TRIM_EVERY = 8  # tiles between giving free heap pages back
ALLOCATOR_MARGIN = 1.25  # freed memory stays with the thread that used it (reads, blending)


def tiled_bytes(
    image: Any, grid: TileGrid, scale: float, classes: int, image_size: int, batch: int, feature_bytes: int
) -> int:
    """Memory a tiled target holds at most beyond the loaded model: two chunks of tiles (the one
    in the model, the next being read) with their pixels as float32 RGB and model inputs, the
    temporaries of one read (the stored chunks it decodes, the rescaled and normalised copies),
    the tiles' features, and the blending (:func:`stitch_bytes`); a quarter more for the allocator."""
    pixels, raw, chunks = window_bytes(image, grid.tile, scale)
    tile = pixels * 12 + 12 * image_size**2  # float32 RGB pixels, and the model input
    read = 2 * chunks + pixels * (raw + 4 + 12 + 24)  # chunks, the window, a plane, RGB, normalised
    labels = np.dtype(label_dtype(list(range(classes + 1)))).itemsize
    low = (image_size // 4, image_size // 4)
    held = 2 * batch * (tile + feature_bytes) + read + stitch_bytes(grid, classes, low, labels)
    return int(ALLOCATOR_MARGIN * held)


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
