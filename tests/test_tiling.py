"""Large images: tiles that cover every pixel, blend without seams, and stay lazy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import disk_mask
from napari_sansa import Image, Mask, Points, Reference, SansaError
from napari_sansa.engine.inputs.images import Multiscale
from napari_sansa.engine.runs import tiled
from napari_sansa.engine.runs.reference_crops import crop_reference
from napari_sansa.engine.runs.tiling import TileOptions, count_tiles, tile_grid

IMAGE_SIZE = 256


def grid_of(hw, tile=256, overlap=32, scale=1.0):
    return tile_grid(hw, TileOptions(tile, overlap, scale).check(), IMAGE_SIZE)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 3000),
    w=st.integers(1, 3000),
    tile=st.integers(64, 700),
    overlap_fraction=st.floats(0, 0.9),
    scale=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
)
def test_tiles_cover_every_pixel_and_overlap_as_asked(h, w, tile, overlap_fraction, scale):
    overlap = int(tile * overlap_fraction)
    grid = grid_of((h, w), tile, overlap, scale)
    if grid is None:  # small enough to be seen whole
        assert max(h, w) * scale <= tile
        return
    cover = np.zeros((h, w), np.int32)
    total = np.zeros((h, w), np.float32)
    for t in grid.tiles:
        assert t.rows.start >= 0 and t.cols.start >= 0 and t.rows.stop <= h and t.cols.stop <= w
        assert t.shape == grid.tile  # full tiles only: none padded, none cut at the edge
        cover[t.rows, t.cols] += 1
        total[t.rows, t.cols] += grid.weights(t)
    assert cover.min() >= 1
    assert total.min() > 0  # every pixel gets a blended value
    for starts, side in ((grid.row_starts, grid.tile[0]), (grid.col_starts, grid.tile[1])):
        shared = [a + side - b for a, b in zip(starts[:-1], starts[1:])]
        assert all(s >= min(round(overlap / scale), side - 1) for s in shared)
    assert len(grid) == count_tiles((h, w), TileOptions(tile, overlap, scale), IMAGE_SIZE)


def test_weights_fall_towards_neighbours_not_towards_the_image_edge():
    grid = grid_of((600, 600), tile=256, overlap=64)
    first, middle = grid.tiles[0], grid.tiles[len(grid.col_starts) + 1]
    w = grid.weights(first)
    assert w[0, 0] == 1 and w[5, 5] == 1  # the image's corner: nobody else covers it
    assert w[-1, -1] < 0.05  # the inner corner, shared with three other tiles
    inner = grid.weights(middle)
    assert inner[128, 128] == 1 and inner[0, 128] < 0.05 and inner[128, -1] < 0.05


def test_auto_tiles_only_what_a_whole_resize_would_shrink_more_than_twice():
    auto = TileOptions().check()
    assert tile_grid((512, 512), auto, IMAGE_SIZE) is None
    assert tile_grid((400, 513), auto, IMAGE_SIZE) is not None
    assert tile_grid((400, 513), TileOptions(scale=0.5).check(), IMAGE_SIZE) is None
    assert tile_grid((5000, 5000), TileOptions(None).check(), IMAGE_SIZE) is None
    grid = tile_grid((1000, 1200), auto, IMAGE_SIZE)
    assert grid.tile == (IMAGE_SIZE, IMAGE_SIZE)  # the model's own input size, native pixels


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (TileOptions(256, 256), "smaller than the tile size"),
        (TileOptions(32, 8), "too small"),
        (TileOptions(256, 32, 0), "scale"),
        (TileOptions(256, 32, -1.0), "scale"),
        (TileOptions("big"), "tile size"),
        (TileOptions(256, -4), "overlap"),
    ],
)
def test_bad_tiling_options_are_explained(model, options, words):
    image = np.zeros((300, 300), np.uint8)
    with pytest.raises(SansaError, match=words):
        options.check()
    with pytest.raises(SansaError, match=words):
        model.segment(
            [Reference(image, {1: Points([[5, 5]])})],
            [image],
            tile_size=options.tile_size,
            overlap=options.overlap,
            scale=options.scale,
        )


@pytest.fixture
def oracle(monkeypatch):
    """The model's heads replaced by a stand-in that sees each tile's pixels exactly: logits
    = brightness - 0.5 at the heads' low resolution. Tiling, blending and writing are real."""
    import torch
    import torch.nn.functional as F

    def predict(model, prepared, banks, frames):
        out = []
        for item in prepared:
            rgb = torch.from_numpy(np.ascontiguousarray(item.image.data[..., 0]))[None, None]
            low = F.interpolate(rgb, size=(IMAGE_SIZE // 4,) * 2, mode="area")[0] - 0.5
            out.append((low.repeat(len(banks), 1, 1) * 20, [1.0] * len(banks)))
        return out

    monkeypatch.setattr(tiled, "_predict", predict)


def blobs_on_tile_borders(shape=(700, 900)):
    """Bright discs centred where tiles of 256 px with a 32 px overlap meet."""
    mask = np.zeros(shape, bool)
    for center in [(224, 224), (224, 448), (448, 640), (600, 224)]:
        mask |= disk_mask(shape, center, 40)
    return (mask * 200 + 20).astype(np.uint8), mask


def test_blobs_across_tile_borders_come_out_whole(model, oracle):
    from skimage.measure import label

    image, mask = blobs_on_tile_borders()
    ref = Reference(image[:200, :200], {1: Mask(image[:200, :200] > 100)})
    [tiled_result] = model.segment([ref], [image], tile_size=256, overlap=32)
    assert tiled_result.tiles == len(grid_of(image.shape))
    found = tiled_result.labels == 1
    assert label(found).max() == 4  # one piece per disc: no seam cuts one
    assert (found ^ mask).mean() < 0.01


def test_labels_are_written_row_band_by_row_band_into_the_given_output(model, oracle):
    image, _ = blobs_on_tile_borders()
    writes, ticks = [], []

    class Recording(np.ndarray):
        def __setitem__(self, key, value):
            writes.append(key[0])
            super().__setitem__(key, value)

    def output(index, hw, dtype):
        assert (index, hw) == (0, image.shape)
        return np.zeros(hw, dtype).view(Recording)

    ref = Reference(image[:200, :200], {1: Mask(image[:200, :200] > 100)})
    options = {"tile_size": 256, "overlap": 32, "output": output, "on_tile": lambda *a: ticks.append(a)}
    [result] = model.segment([ref], [image], **options)
    grid = grid_of(image.shape)
    assert isinstance(result.labels, Recording)
    assert [w.start for w in writes] == list(grid.row_starts)  # each band once, top to bottom
    assert writes[-1].stop == image.shape[0]
    assert all(w.stop - w.start <= grid.tile[0] for w in writes)  # never more than a tile high
    assert ticks == [(0, k, len(grid)) for k in range(1, len(grid) + 1)]
    assert result.logits == {}


def test_lazy_inputs_give_the_labels_of_the_same_pixels_in_memory(model):
    import zarr

    rng = np.random.default_rng(3)
    image = rng.integers(0, 4000, (520, 700), dtype=np.uint16)
    ref = Reference(image[:300, :300], {1: Points([[150, 150]])})
    on_disk = zarr.create_array(
        store=zarr.storage.MemoryStore(), shape=image.shape, chunks=(128, 128), dtype=image.dtype
    )
    on_disk[:] = image
    options = {"tile_size": 256, "overlap": 32, "keep_logits": True}
    [in_memory] = model.segment([ref], [image], **options)
    [lazy] = model.segment([ref], [Image(on_disk)], **options)
    np.testing.assert_array_equal(lazy.labels, in_memory.labels)
    assert lazy.logits[1].dtype == np.float16 and lazy.logits[1].shape == image.shape
    assert lazy.tiles == in_memory.tiles == len(grid_of(image.shape)) == 9


def test_encoder_passes_count_tiles_and_tiles_are_cached(fresh_model):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (300, 600), dtype=np.uint8)
    ref = Reference(image[:, :256], {1: Points([[100, 100]])})
    fresh_model.segment([ref], [image[:, :256]])
    before = fresh_model.encoder_passes
    [result] = fresh_model.segment([ref], [image], tile_size=256, overlap=32)
    assert fresh_model.encoder_passes - before == result.tiles == 6
    fresh_model.segment([ref], [image], tile_size=256, overlap=32)
    assert fresh_model.encoder_passes - before == 6  # the second time, all from the cache
    estimate = fresh_model.estimate([ref], [image, image[:256, :256]], tile_size=256, overlap=32)
    assert estimate.passes == 7 and "7 tiles" in str(estimate)


def test_small_images_are_seen_whole_exactly_as_before(model):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (300, 340), dtype=np.uint8)
    ref = Reference(image, {1: Points([[100, 100]])})
    [auto] = model.segment([ref], [image[::-1]])
    [whole] = model.segment([ref], [image[::-1]], tile_size=None)
    assert auto.tiles == whole.tiles == 1
    np.testing.assert_array_equal(auto.labels, whole.labels)
    np.testing.assert_array_equal(auto.logits[1], whole.logits[1])


def test_a_pyramid_is_read_at_the_level_of_the_working_scale(model, oracle):
    image, mask = blobs_on_tile_borders((800, 800))
    reads = []

    class Watched(np.ndarray):
        def __getitem__(self, key):
            reads.append(self.shape)
            return np.asarray(super().__getitem__(key))

    levels = [image.view(Watched), image[::2, ::2].copy().view(Watched), image[::4, ::4].copy().view(Watched)]
    ref = Reference(image[:200, :200], {1: Mask(image[:200, :200] > 100)})
    [result] = model.segment([ref], [Multiscale(levels)], tile_size=256, overlap=32, scale=0.5)
    assert result.labels.shape == image.shape  # labels at level 0, whatever level was read
    assert {shape for shape in reads} <= {(400, 400), (200, 200)}  # never the full resolution
    assert result.tiles == len(grid_of(image.shape, scale=0.5))
    assert ((result.labels == 1) ^ mask).mean() < 0.02


def test_a_tile_that_cannot_be_read_is_reported_and_the_rest_written(model, oracle):
    image, mask = blobs_on_tile_borders()

    class Broken(np.ndarray):
        def __getitem__(self, key):
            rows = key[0]
            if isinstance(rows, slice) and rows.start is not None and rows.start >= 400:
                raise OSError("chunk 2.1 is corrupt")
            return np.asarray(super().__getitem__(key))

    ref = Reference(image[:200, :200], {1: Mask(image[:200, :200] > 100)})
    errors = []
    target = Image(image.view(Broken), contrast_limits=(0, 255))
    [result] = model.segment(
        [ref], [target], tile_size=256, overlap=32, on_tile_error=lambda i, e: errors.append((i, e))
    )
    grid = grid_of(image.shape)
    bad = [t for t in grid.tiles if t.rows.start >= 400]
    assert len(errors) == len(bad) and all(i == 0 and "corrupt" in str(e) for i, e in errors)
    assert "Tile " in str(errors[0][1]) and not result.complete
    assert len(result.missing) == len(bad)
    top = slice(0, min(t.rows.start for t in bad))
    assert ((result.labels[top] == 1) ^ mask[top]).mean() < 0.01  # written where readable
    with pytest.raises(SansaError, match="corrupt"):
        model.segment([ref], [target], tile_size=256, overlap=32)
    skipped = []  # without on_tile_error, the target fails: reported as skipped, not written
    assert (
        model.segment([ref], [target], tile_size=256, overlap=32, on_error=lambda i, e: skipped.append(i))
        == []
    )
    assert skipped == [0]


def test_large_references_become_crops_at_the_working_scale():
    options = TileOptions(256, 32).check()
    shape = (1000, 1400)
    image = np.zeros(shape, np.uint16)
    small = disk_mask(shape, (700, 1000), 50)
    [crop] = crop_reference(Reference(image, {1: Mask(small)}), 0, options, IMAGE_SIZE, 7)
    assert crop.image.data.shape[:2] == (256, 256)  # native pixels, not a thumbnail
    assert crop.prompts[1].mask.sum() == small.sum()  # all of the object inside its crop

    everywhere = np.zeros(shape, bool)
    everywhere[100:900, 50:1350] = True
    crops = crop_reference(Reference(image, {1: Mask(everywhere)}), 0, options, IMAGE_SIZE, 7)
    assert len(crops) == 7  # SAM2's memory of 7 frames

    clicks = Points([[50, 60], [900, 1300], [910, 1290]], labels=[1, 1, 0])
    crops = crop_reference(Reference(image, {2: clicks}), 0, options, IMAGE_SIZE, 7)
    assert len(crops) == 2
    points = [np.concatenate([np.asarray(p.coords) for p in c.prompts[2]]) for c in crops]
    assert all(((p >= 0) & (p < 256)).all() for p in points)  # each click inside its crop
    assert sorted(len(p) for p in points) == [1, 2]  # the negative click goes with its neighbour

    half = crop_reference(
        Reference(image, {1: Mask(small)}), 0, TileOptions(256, 32, 0.5).check(), IMAGE_SIZE, 7
    )
    assert half[0].image.data.shape[:2] == (512, 512)  # a tile of 512 image pixels, seen at half scale
    assert half[0].prompts[1].mask.sum() == small.sum()


def test_tiled_targets_cannot_be_a_sequence(model):
    image = np.zeros((300, 700), np.uint8)
    ref = Reference(image[:, :300], {1: Points([[5, 5]])})
    with pytest.raises(SansaError, match="tile_size=None"):
        model.segment([ref], [image], sequential=True, tile_size=256, overlap=32)


def test_a_full_disk_while_writing_fails_the_target_with_a_clear_message(model, oracle):
    image, _ = blobs_on_tile_borders()

    class Full(np.ndarray):
        def __setitem__(self, key, value):
            raise OSError(28, "No space left on device")

    ref = Reference(image[:200, :200], {1: Mask(image[:200, :200] > 100)})
    output = lambda index, hw, dtype: np.zeros(hw, dtype).view(Full)  # noqa: E731
    failures = []
    results = model.segment(
        [ref],
        [image],
        tile_size=256,
        overlap=32,
        output=output,
        on_error=lambda i, e: failures.append(str(e)),
    )
    assert results == [] and "No space left" in failures[0] and "rows 0-" in failures[0]


def test_objects_of_a_tiled_image_by_watershed_and_a_clear_word_for_sam(model, oracle):
    image, mask = blobs_on_tile_borders()
    ref = Reference(image[:200, :200], {1: Mask(image[:200, :200] > 100)})
    [result] = model.segment([ref], [image], tile_size=256, overlap=32)
    objects = result.instances("watershed")
    assert len(objects.table) == 4
    with pytest.raises(SansaError, match="tiles.*watershed"):
        result.instances("sam")


def test_a_damaged_smallest_level_of_a_pyramid_costs_no_more_than_its_tiles(model, oracle):
    image, mask = blobs_on_tile_borders((800, 800))

    class Damaged(np.ndarray):
        def __getitem__(self, key):
            raise OSError("chunk 0.0 is corrupt")

    levels = [image, image[::2, ::2].copy(), image[::4, ::4].copy().view(Damaged)]
    ref = Reference(image[:200, :200], {1: Mask(image[:200, :200] > 100)})
    [result] = model.segment([ref], [Multiscale(levels)], tile_size=256, overlap=32)
    assert result.complete  # contrast sampled from the next level; tiles read level 0
    assert ((result.labels == 1) ^ mask).mean() < 0.02
