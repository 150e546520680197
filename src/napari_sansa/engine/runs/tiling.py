"""Where the tiles of a large image go, and how their logits blend into one seamless map.

A large image is segmented at its own resolution (times ``scale``) in square tiles of
``tile_size`` working pixels that overlap by at least ``overlap``; each tile is a model input.
Tiles are laid out in level-0 pixels (the image's full resolution), the last one of each row and
column flush with the image's edge, so every pixel is covered and none is padded. Where tiles
overlap, their logits are averaged with weights that fall off linearly towards the tile's inner
edges (not towards the image's edges), so no seam appears where one tile ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from napari_sansa.engine.errors import SansaError

AUTO = "auto"
MIN_TILE = 64
AUTO_SHRINK = 2.0  # "auto" tiles an image that resizing whole would shrink more than this


@dataclass(frozen=True)
class TileOptions:
    """How large images are cut into tiles.

    ``tile_size``: ``None`` resizes every image whole to the model input (no tiling); an int tiles
    images larger than that many working pixels; ``"auto"`` tiles, at the model's input size,
    images that a whole-image resize would shrink more than 2x. ``overlap``: pixels of the
    working resolution shared by neighbouring tiles. ``scale``: the working resolution relative
    to the image's pixels (1.0 native, 0.5 half).
    """

    tile_size: int | str | None = AUTO
    overlap: int = 128
    scale: float = 1.0

    def check(self) -> TileOptions:
        """The options, or a SansaError that says which one is wrong and why."""
        tile = self.tile_size
        if isinstance(tile, str):
            if tile.lower() != AUTO:
                raise SansaError(f'The tile size must be a number of pixels, "auto" or None, not {tile!r}.')
        elif tile is not None:
            if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)):
                raise SansaError(f"The tile size must be a whole number of pixels, not {tile!r}.")
            if tile < MIN_TILE:
                raise SansaError(
                    f"A tile size of {tile} px is too small: use at least {MIN_TILE} px (1024 is SAM2's own)."
                )
        if (
            isinstance(self.overlap, bool)
            or not isinstance(self.overlap, (int, np.integer))
            or self.overlap < 0
        ):
            raise SansaError(f"The overlap must be a whole number of pixels >= 0, not {self.overlap!r}.")
        if isinstance(tile, (int, np.integer)) and self.overlap >= tile:
            raise SansaError(
                f"The overlap ({self.overlap} px) must be smaller than the tile size ({tile} px); "
                f"e.g. {tile // 8} px."
            )
        try:
            scale = float(self.scale)
        except (TypeError, ValueError):
            raise SansaError(f"The scale must be a number > 0, not {self.scale!r}.") from None
        if not math.isfinite(scale) or scale <= 0:
            raise SansaError(
                f"The scale must be a number > 0 (1.0 = the image's own pixels, 0.5 = half), not {self.scale!r}."
            )
        return self

    def working_tile(self, image_size: int) -> int | None:
        """The tile side in working pixels, or None when images are never tiled."""
        if self.tile_size is None:
            return None
        if isinstance(self.tile_size, str):
            return image_size
        return int(self.tile_size)


@dataclass(frozen=True)
class Tile:
    """One tile: its place in the raster order and its window in level-0 pixels."""

    index: int
    rows: slice
    cols: slice

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one image, row by row; ``row_starts`` are the first rows of each tile row."""

    shape: tuple[int, int]
    tile: tuple[int, int]  # tile height and width in level-0 pixels
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def tiles(self) -> list[Tile]:
        th, tw = self.tile
        return [
            Tile(i * len(self.col_starts) + j, slice(r, r + th), slice(c, c + tw))
            for i, r in enumerate(self.row_starts)
            for j, c in enumerate(self.col_starts)
        ]

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def weights(self, tile: Tile) -> np.ndarray:
        """``(h, w)`` float32 blending weights of a tile: 1 inside, falling towards neighbours."""
        return np.outer(*self.ramps(tile))

    def ramps(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """A tile's weights along its rows and along its columns (their outer product: :meth:`weights`)."""
        i, j = divmod(tile.index, len(self.col_starts))
        return _ramp(self.row_starts, i, self.tile[0]), _ramp(self.col_starts, j, self.tile[1])


def _starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Tile starts along one axis: evenly spread, the first at 0 and the last flush with the end,
    neighbours sharing at least ``overlap`` pixels."""
    if length <= tile:
        return (0,)
    step = max(tile - overlap, 1)
    count = math.ceil((length - tile) / step) + 1
    return tuple(int(round(v)) for v in np.linspace(0, length - tile, count))


def _ramp(starts: tuple[int, ...], k: int, size: int) -> np.ndarray:
    """One axis of a tile's weights: rising over the overlap with the previous tile, falling over
    the overlap with the next; flat towards the image's edges."""
    position = np.arange(size, dtype=np.float32) + 0.5
    weight = np.ones(size, np.float32)
    if k > 0:
        shared = starts[k - 1] + size - starts[k]
        weight = np.minimum(weight, position / shared)
    if k + 1 < len(starts):
        shared = starts[k] + size - starts[k + 1]
        weight = np.minimum(weight, (size - position) / shared)
    return weight


def tile_grid(hw: tuple[int, int], options: TileOptions, image_size: int) -> TileGrid | None:
    """The tiles of an image of ``hw`` level-0 pixels, or None when it is resized whole."""
    working = options.working_tile(image_size)
    if working is None:
        return None
    scale = float(options.scale)
    side = max(hw) * scale
    limit = AUTO_SHRINK * image_size if isinstance(options.tile_size, str) else working
    if side <= limit:
        return None
    tile = max(1, int(round(working / scale)))
    overlap = int(round(options.overlap / scale))
    th, tw = min(tile, hw[0]), min(tile, hw[1])
    return TileGrid(tuple(hw), (th, tw), _starts(hw[0], th, overlap), _starts(hw[1], tw, overlap))


def count_tiles(hw: tuple[int, int], options: TileOptions, image_size: int) -> int:
    """Encoder passes an image of ``hw`` pixels costs: its tiles, or 1 when resized whole."""
    grid = tile_grid(hw, options, image_size)
    return 1 if grid is None else len(grid)
