"""Blending tiles region by region gives the map that blending whole upsampled tiles gives, and
holds only the tiles that later regions need, however wide or tall the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sansa.engine.runs.stitching import Stitcher
from napari_sansa.engine.runs.tiling import TileOptions, tile_grid


def whole_tiles_blended(grid, low_res: dict[int, np.ndarray], classes: int) -> np.ndarray:
    """The plain way: each tile upsampled whole to its window, weighted sums over the image."""
    sums = np.zeros((classes, *grid.shape), np.float32)
    weights = np.zeros(grid.shape, np.float32)
    for tile in grid.tiles:
        if tile.index not in low_res:
            continue
        up = F.interpolate(torch.from_numpy(low_res[tile.index])[None], size=tile.shape, mode="bilinear")[0]
        w = grid.weights(tile)
        sums[:, tile.rows, tile.cols] += up.numpy() * w
        weights[tile.rows, tile.cols] += w
    out = np.full(sums.shape, -np.inf, np.float32)
    np.divide(sums, weights, out=out, where=weights > 0)
    return out


def stitched(grid, low_res: dict[int, np.ndarray], classes: int) -> tuple[np.ndarray, int]:
    """The map region by region, and the most tiles held at once."""
    out = np.full((classes, *grid.shape), np.nan, np.float32)
    stitcher = Stitcher(grid, classes, threshold=0.0)
    most = 0
    for tile in grid.tiles:
        if tile.index in low_res:
            stitcher.add(tile, low_res[tile.index])
        for rows, cols, blended in stitcher.finish(tile):
            assert np.isnan(out[:, rows, cols]).all()  # each pixel written once
            out[:, rows, cols] = blended
        most = max(most, len(stitcher.held))
        stitcher.release(tile)
    assert not stitcher.held  # every tile let go by the end
    return out, most


@pytest.mark.parametrize(
    ("hw", "tile", "overlap", "scale", "low", "lost"),
    [
        ((700, 900), 256, 32, 1.0, 64, ()),
        ((1100, 530), 200, 90, 0.5, 50, (3,)),  # a tile that could not be read: -inf where only it was
        ((300, 2000), 128, 16, 2.0, 32, ()),
    ],
)
def test_regions_blend_as_whole_tiles_do(hw, tile, overlap, scale, low, lost):
    grid = tile_grid(hw, TileOptions(tile, overlap, scale).check(), tile)
    rng = np.random.default_rng(0)
    low_res = {t.index: rng.normal(0, 5, (2, low, low)).astype(np.float32) for t in grid.tiles}
    for index in lost:
        del low_res[index]
    expected = whole_tiles_blended(grid, low_res, 2)
    found, _ = stitched(grid, low_res, 2)
    assert not np.isnan(found).any()  # every pixel finished
    np.testing.assert_array_equal(np.isinf(found), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(found[finite], expected[finite], rtol=1e-5, atol=1e-4)


def test_held_tiles_grow_with_the_tile_columns_only_and_are_trimmed_to_strips():
    rng = np.random.default_rng(1)
    most = {}
    for hw in [(1000, 1000), (1000, 4000), (4000, 1000)]:
        grid = tile_grid(hw, TileOptions(256, 32).check(), 256)
        low_res = {t.index: rng.normal(size=(1, 64, 64)).astype(np.float32) for t in grid.tiles}
        _, most[hw] = stitched(grid, low_res, 1)
        columns = len(grid.col_starts)
        assert most[hw] <= columns + 2
    assert most[(4000, 1000)] == most[(1000, 1000)]  # taller: no more held
    grid = tile_grid((1000, 4000), TileOptions(256, 32).check(), 256)
    stitcher = Stitcher(grid, 1, 0.0)
    for tile in grid.tiles[: len(grid.col_starts) + 1]:  # the first row of tiles and one more
        stitcher.add(tile, np.zeros((1, 64, 64), np.float32))
        list(stitcher.finish(tile))
        stitcher.release(tile)
    strips = [h.logits.shape[1] for h in stitcher.held.values() if h.tile.rows.start == 0]
    shared = grid.row_starts[0] + 256 - grid.row_starts[1]  # rows the next row of tiles shares
    assert strips and max(strips) <= shared * 64 // 256 + 2  # a strip of the overlap, not whole tiles
