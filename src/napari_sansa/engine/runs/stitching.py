"""Tiles' logits blended into one map region by region, holding only what later tiles still need.

The tile starts cut the image into *regions*: rows from one tile row's start to the next's, columns
likewise. Tile (i, j) is the last tile, in raster order, that touches region (i, j), so the moment
it is blended that region is final and can be written. Each tile's logits are kept at the heads'
low resolution (a quarter of the model input per side) and upsampled to image pixels only inside
the region being finished, a block of rows at a time, with the very interpolation that upsampling
the whole tile would use (bilinear, half-pixel centres); the blend weights come per axis from the
grid. A tile is trimmed to the strip of low-resolution rows the next tile row still needs once its
own region row is done, and dropped after its last region. So what is held is a strip per tile
column, a few low-resolution tiles and one block: it does not grow with the image's height, and
with its width only by those strips (``classes x overlap/4 x tile/4`` floats per tile column).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from napari_sansa.engine.runs.tiling import Tile, TileGrid

BLOCK_PIXELS = 2**20  # image pixels blended at once (a block of rows of a region)
WRITE_BYTES = 2**22  # labels of a row of regions gathered into one write, up to this much

Block = tuple[slice, slice, np.ndarray]  # rows, columns, blended logits (classes, h, w)


@dataclass(frozen=True)
class _Taps:
    """Bilinear interpolation along one axis: for each output pixel, two input indices and weights
    (as ``F.interpolate(mode="bilinear", align_corners=False)`` computes them, in float32)."""

    first: np.ndarray
    second: np.ndarray
    far: np.ndarray  # the weight of ``second``; ``first`` weighs 1 - far

    @classmethod
    def of(cls, local: np.ndarray, low: int, size: int) -> _Taps:
        scale = np.float32(low / size)
        source = np.maximum((local.astype(np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
        first = np.minimum(source.astype(np.int64), low - 1)
        second = np.minimum(first + 1, low - 1)
        return cls(first, second, (source - first).astype(np.float32))


def first_low_row(local_row: int, low: int, size: int) -> int:
    """The first low-resolution row that image rows from ``local_row`` on interpolate from."""
    return int(_Taps.of(np.array([local_row]), low, size).first[0])


@dataclass(eq=False)
class _Held:
    """A blended tile's low-resolution logits (its rows from ``offset`` on)."""

    tile: Tile
    logits: np.ndarray
    low: tuple[int, int]
    offset: int
    last: tuple[int, int]  # the last region (row, column) it touches
    areas: np.ndarray  # pixels of each class above the threshold, over the regions done so far

    def upsampled(self, rows: slice, cols: slice) -> np.ndarray:
        """``(classes, h, w)`` logits of image pixels ``rows, cols`` (inside the tile), as the
        whole tile upsampled to its window would have them."""
        th, tw = self.tile.shape
        local_r = np.arange(rows.start, rows.stop) - self.tile.rows.start
        local_c = np.arange(cols.start, cols.stop) - self.tile.cols.start
        r = _Taps.of(local_r, self.low[0], th)
        c = _Taps.of(local_c, self.low[1], tw)
        logits = self.logits
        near = logits[:, r.first - self.offset]
        far = logits[:, r.second - self.offset]
        top = near[:, :, c.first] * (1 - c.far) + near[:, :, c.second] * c.far
        bottom = far[:, :, c.first] * (1 - c.far) + far[:, :, c.second] * c.far
        return top * (1 - r.far)[:, None] + bottom * r.far[:, None]


class Stitcher:
    """Blends tiles added in raster order; :meth:`finish` gives a tile's region once it is final."""

    def __init__(self, grid: TileGrid, classes: int, threshold: float) -> None:
        self.grid = grid
        self.classes = classes
        self.threshold = threshold
        self.row_ends = list(grid.row_starts[1:]) + [grid.shape[0]]
        self.col_ends = list(grid.col_starts[1:]) + [grid.shape[1]]
        self.held: dict[int, _Held] = {}

    def region(self, tile: Tile) -> tuple[slice, slice]:
        """The image pixels that become final once ``tile`` is blended."""
        i, j = divmod(tile.index, len(self.grid.col_starts))
        g = self.grid
        return slice(g.row_starts[i], self.row_ends[i]), slice(g.col_starts[j], self.col_ends[j])

    def add(self, tile: Tile, logits: np.ndarray) -> None:
        """A tile's low-resolution logits ``(classes, h, w)``, float32."""
        last = (
            bisect.bisect_left(self.grid.row_starts, tile.rows.stop) - 1,
            bisect.bisect_left(self.grid.col_starts, tile.cols.stop) - 1,
        )
        low = logits.shape[1:]
        areas = np.zeros(self.classes, np.int64)
        self.held[tile.index] = _Held(tile, np.asarray(logits, np.float32), low, 0, last, areas)

    def finish(self, tile: Tile) -> Iterator[Block]:
        """Blended logits of ``tile``'s region, a block of rows at a time (-inf where no tile was
        read). Call for every tile in raster order, read or not, after adding it if it was."""
        rows, cols = self.region(tile)
        width = cols.stop - cols.start
        step = max(1, BLOCK_PIXELS // max(width, 1))
        touching = [
            h for h in sorted(self.held.values(), key=lambda h: h.tile.index) if _meets(h.tile, rows, cols)
        ]
        for start in range(rows.start, rows.stop, step):
            block = slice(start, min(start + step, rows.stop))
            sums = np.zeros((self.classes, block.stop - block.start, width), np.float32)
            weights = np.zeros(sums.shape[1:], np.float32)
            for held in touching:
                r = slice(max(block.start, held.tile.rows.start), min(block.stop, held.tile.rows.stop))
                if r.start >= r.stop:
                    continue
                c = slice(max(cols.start, held.tile.cols.start), min(cols.stop, held.tile.cols.stop))
                up = held.upsampled(r, c)
                held.areas += np.count_nonzero(up > self.threshold, axis=(1, 2))
                w = self._weights(held.tile, r, c)
                inside = (
                    slice(None),
                    slice(r.start - block.start, r.stop - block.start),
                    slice(c.start - cols.start, c.stop - cols.start),
                )
                sums[inside] += up * w
                weights[inside[1:]] += w
            blended = np.full(sums.shape, -np.inf, np.float32)
            np.divide(sums, weights, out=blended, where=weights > 0)  # -inf: no tile was read here
            yield block, cols, blended

    def release(self, tile: Tile) -> list[tuple[Tile, np.ndarray]]:
        """After ``tile``'s region: the tiles no later region needs (dropped), with each class's
        pixels above the threshold; the tiles whose region row is done are trimmed to the strip
        that the next tile row still needs."""
        i, j = divmod(tile.index, len(self.grid.col_starts))
        done = []
        for key, held in list(self.held.items()):
            if held.last == (i, j):
                done.append((held.tile, held.areas))
                del self.held[key]
            elif held.last[1] == j and held.last[0] > i:
                keep = first_low_row(self.row_ends[i] - held.tile.rows.start, held.low[0], held.tile.shape[0])
                if keep > held.offset:
                    held.logits = held.logits[:, keep - held.offset :].copy()
                    held.offset = keep
        return done

    def _weights(self, tile: Tile, rows: slice, cols: slice) -> np.ndarray:
        along_rows, along_cols = self.grid.ramps(tile)
        r = along_rows[rows.start - tile.rows.start : rows.stop - tile.rows.start]
        c = along_cols[cols.start - tile.cols.start : cols.stop - tile.cols.start]
        return np.outer(r, c)


def _meets(tile: Tile, rows: slice, cols: slice) -> bool:
    return (
        tile.rows.start < rows.stop
        and rows.start < tile.rows.stop
        and tile.cols.start < cols.stop
        and cols.start < tile.cols.stop
    )


class RowWrites:
    """Labels of a row of regions gathered and written together (one write per row of regions
    when it is small, else a write each ``WRITE_BYTES``), as zarr stores prefer few writes."""

    def __init__(self, write: Callable[[slice, slice, np.ndarray], None]) -> None:
        self.write = write
        self.pending: list[tuple[slice, slice, np.ndarray]] = []

    def add(self, rows: slice, cols: slice, labels: np.ndarray, row_done: bool) -> None:
        self.pending.append((rows, cols, labels))
        if row_done or sum(p[2].nbytes for p in self.pending) >= WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        rows = self.pending[0][0]
        cols = slice(self.pending[0][1].start, self.pending[-1][1].stop)
        labels = np.concatenate([p[2] for p in self.pending], axis=1)
        self.pending = []
        self.write(rows, cols, labels)


def stitch_bytes(grid: TileGrid, classes: int, low: tuple[int, int], label_bytes: int) -> int:
    """Memory a tiled target's blending holds at most: the strips kept per tile column, a few
    whole low-resolution tiles, one block of floats with its temporaries and the labels of a
    region and of a write."""
    per_row = 4 * classes * low[1]
    rows_kept = max(
        (low[0] - first_low_row(grid.row_starts[1] - grid.row_starts[0], low[0], grid.tile[0]))
        if len(grid.row_starts) > 1
        else 0,
        0,
    )
    strips = len(grid.col_starts) * rows_kept * per_row
    whole = 3 * low[0] * per_row
    width = max(e - s for s, e in zip(grid.col_starts, list(grid.col_starts[1:]) + [grid.shape[1]]))
    height = max(e - s for s, e in zip(grid.row_starts, list(grid.row_starts[1:]) + [grid.shape[0]]))
    block = min(BLOCK_PIXELS, width * height) + width  # rows are whole: one row more at most
    floats = block * 4 * (6 * classes + 3)  # sums, blended, the gathers of a tile, weights
    labels = height * width * label_bytes + 2 * (
        WRITE_BYTES + height * width * label_bytes
    )  # + the joined copy
    return strips + whole + floats + labels
