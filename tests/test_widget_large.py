"""The widget on large images: multiscale and lazy layers segmented in tiles, into zarr-backed
result layers that fill as tiles finish, tiling settings, bad settings and export."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr

from napari_sansa.samples import cells

LARGE = (700, 700)  # image_size 256 and auto tiles: 256 px tiles, 3 x 3 of them with overlap 32
OVERLAP = 32


def run_and_wait(widget, qtbot, timeout=180_000):
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)
    return worker


def pyramid(image: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    return [np.ascontiguousarray(image[:: 2**k, :: 2**k]) for k in range(levels)]


def large_viewer(open_widget, levels=None, scale=(0.5, 0.5)):
    """A small annotated image, and a large multiscale mosaic (checked as the only target)."""
    viewer, widget = open_widget(sample=None)
    widget.precision.setCurrentText("fp32")
    (small, truth), (mosaic, _) = cells(1, seed=3)[0], cells(1, shape=LARGE, seed=4)[0]
    viewer.add_image(small, name="small", rgb=True)
    viewer.add_image(levels or pyramid(mosaic), name="mosaic", rgb=True, multiscale=True, scale=scale)
    widget.prompt_image.setCurrentText("small")
    prompts = widget.add_prompt_layer("labels")
    prompts.data[truth == 1] = 1
    prompts.refresh()
    widget.large_panel.overlap.setValue(OVERLAP)
    return viewer, widget


def test_a_multiscale_target_fills_a_zarr_backed_layer_tile_by_tile(
    open_widget, qtbot, monkeypatch, tmp_path, exported
):
    from napari.layers import Labels

    from napari_sansa.engine.inputs.images import Multiscale
    from napari_sansa.engine.runs.tiling import TileOptions, count_tiles

    mosaic = cells(1, shape=LARGE, seed=4)[0][0]
    levels = pyramid(mosaic)
    levels[0] = Watched(levels[0])
    viewer, widget = large_viewer(open_widget, levels=levels)
    filled_at_refresh = []  # how much of the result layer is labelled each time it is redrawn
    refresh = Labels.refresh

    def counting_refresh(layer, *args, **kwargs):
        if layer.name == "mosaic [SANSA]" and widget.worker is not None:
            filled_at_refresh.append(int(np.count_nonzero(np.asarray(layer.data))))
        return refresh(layer, *args, **kwargs)

    monkeypatch.setattr(Labels, "refresh", counting_refresh)
    monkeypatch.setattr("napari_sansa.plugin.viewer.tile_progress.REFRESH_EVERY_S", 0.0)
    tiles_seen = []
    widget.runner.tile_done.connect(lambda event: tiles_seen.append((event.done, event.total)))
    run_and_wait(widget, qtbot)

    layer = viewer.layers["mosaic [SANSA]"]
    image = viewer.layers["mosaic"]
    assert isinstance(layer.data, zarr.Array) and not layer.multiscale
    assert layer.data.shape == LARGE
    assert np.allclose(layer.scale, image.scale) and np.allclose(layer.translate, image.translate)
    expected_tiles = count_tiles(LARGE, TileOptions("auto", OVERLAP), 256)
    assert expected_tiles > 4
    assert [done for done, _ in tiles_seen] == list(range(1, expected_tiles + 1))
    assert {total for _, total in tiles_seen} == {expected_tiles}
    # the layer was redrawn while its tiles were still coming, more of it labelled each time
    assert len(set(filled_at_refresh)) >= 3 and filled_at_refresh == sorted(filled_at_refresh)
    # the same labels as the engine gives for the same pyramid and settings
    # the run read the image by tiles, never whole
    assert len(levels[0].reads) >= expected_tiles and max(h * w for h, w in levels[0].reads) <= 256 * 256
    references = widget.plan().references
    expected = widget.model.segment(
        references,
        [Multiscale(pyramid(mosaic), contrast_limits=None)],
        tile_size="auto",
        overlap=OVERLAP,
    )[0]
    assert expected.tiles == expected_tiles
    np.testing.assert_array_equal(layer.data[...], np.asarray(expected.labels))
    assert f"1 of 1 images segmented in {expected_tiles} tiles" in widget.status.text()
    assert f"{expected_tiles} tiles" in widget.estimate

    # a correction painted into the zarr-backed layer is kept and locks the image
    layer.paint((10, 10), 2, refresh=False)
    assert layer.data[10, 10] == 2
    assert any(widget._names[k.image_id] == "mosaic" for k in widget.locked)

    # export: a large result is an OME-Zarr store equal to the layer, next to the small files
    written = exported(widget, tmp_path / "out")
    store = tmp_path / "out" / "mosaic.ome.zarr"
    assert store in written
    group = zarr.open_group(str(store), mode="r")
    multiscales = group.attrs["ome"]["multiscales"][0]
    level0 = group[multiscales["datasets"][0]["path"]]
    np.testing.assert_array_equal(level0[...], layer.data[...])
    assert multiscales["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.5, 0.5]
    with pytest.raises(Exception, match="already exist"):
        widget.export(tmp_path / "out")

    # QuPath GeoJSON of the zarr-backed result: one feature per class region, read tile by tile
    import json

    from napari_sansa.files.polygons import label_regions

    exported(widget, tmp_path / "tools", formats=("geojson",))
    features = json.loads((tmp_path / "tools" / "mosaic_objects.geojson").read_text())["features"]
    assert len(features) == len(list(label_regions(np.asarray(layer.data[...])))) > 0


def test_tiling_settings_reach_the_engine_and_are_remembered(open_widget, qtbot, monkeypatch):
    from napari_sansa import Sansa

    calls = []
    propagate = Sansa.propagate

    def spying(self, references, targets, **kwargs):
        calls.append({k: kwargs.get(k) for k in ("tile_size", "overlap", "scale")})
        return propagate(self, references, targets, **kwargs)

    monkeypatch.setattr(Sansa, "propagate", spying)
    viewer, widget = large_viewer(open_widget)
    panel = widget.large_panel
    panel.tile_size.setCurrentText("whole image")
    run_and_wait(widget, qtbot)
    assert calls == [{"tile_size": None, "overlap": OVERLAP, "scale": 1.0}]
    layer = viewer.layers["mosaic [SANSA]"]
    assert isinstance(layer.data, np.ndarray) and layer.data.shape == LARGE  # today's behaviour

    # a working pixel size of 1.0 on a layer of pixel size 0.5 is a scale of 0.5
    panel.tile_size.setCurrentText("512")
    panel.resolution.setCurrentText("pixel size")
    panel.value.setValue(1.0)
    source = widget.plan().targets[0][1]
    assert panel.options(source) == {"tile_size": 512, "overlap": OVERLAP, "scale": 0.5}
    from napari_sansa.plugin.core.settings import save_settings

    save_settings(widget._settings())
    _, again = open_widget(sample=None)
    assert again.large_panel.tile_size.currentText() == "512"
    assert again.large_panel.overlap.value() == OVERLAP
    assert again.large_panel.resolution.currentText() == "pixel size"
    assert again.large_panel.value.value() == 1.0


@pytest.mark.parametrize(
    ("tile", "overlap", "says"),
    [("512", 600, "overlap (600 px) must be smaller"), ("32", 8, "too small"), ("big", 8, "tile size")],
)
def test_bad_tiling_settings_are_a_notification_and_nothing_runs(open_widget, errors, tile, overlap, says):
    viewer, widget = large_viewer(open_widget)
    widget.large_panel.tile_size.setCurrentText(tile)
    widget.large_panel.overlap.setValue(overlap)
    assert widget.run() is None
    assert widget.worker is None
    assert len(errors) == 1 and says in errors[0]
    assert "mosaic [SANSA]" not in [layer.name for layer in viewer.layers]


class Watched:
    """An array that records the windows read off the main thread (by the run, not by napari's
    drawing), and cannot read those that touch ``bad`` there (a damaged chunk)."""

    def __init__(self, data: np.ndarray, bad: tuple[slice, slice] | None = None) -> None:
        self.data, self.bad, self.reads = data, bad, []
        self.shape, self.dtype, self.ndim, self.size = data.shape, data.dtype, data.ndim, data.size

    def __getitem__(self, key):
        if threading.current_thread() is not threading.main_thread():
            window = self.data[key]
            self.reads.append(window.shape[:2])
            rows, cols, bad = key[0], key[1], self.bad
            hit = bad and rows.start < bad[0].stop and rows.stop > bad[0].start
            if hit and cols.start < bad[1].stop and cols.stop > bad[1].start:
                raise OSError("chunk 0/0 is damaged")
        return self.data[key]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)


def test_an_unreadable_tile_is_named_in_a_notification_and_the_rest_is_shown(
    open_widget, qtbot, errors, monkeypatch
):
    from napari_sansa.plugin import notifications

    told = []
    monkeypatch.setattr(notifications, "info", told.append)
    mosaic = cells(1, shape=LARGE, seed=4)[0][0]
    levels = pyramid(mosaic)
    levels[0] = Watched(levels[0], (slice(0, 100), slice(0, 100)))
    viewer, widget = large_viewer(open_widget, levels=levels)
    widget.objects_panel.output.setCurrentText("objects")
    run_and_wait(widget, qtbot)
    assert any("Objects are not split on images segmented in tiles" in t for t in told)
    assert len(errors) == 1
    assert "mosaic" in errors[0] and "Tile 1 of" in errors[0] and "damaged" in errors[0]
    layer = viewer.layers["mosaic [SANSA]"]
    assert layer.data.shape == LARGE
    assert "1 of 1 images segmented" in widget.status.text()


def test_planes_of_a_large_zarr_stack_are_tiled_one_by_one_into_the_stack_result(open_widget, qtbot):
    from napari_sansa.engine.inputs.images import Image

    stack = zarr.create_array(
        store=zarr.storage.MemoryStore(), shape=(2, *LARGE), chunks=(1, 256, 256), dtype=np.uint8
    )
    for z in range(2):
        stack[z] = cells(1, shape=LARGE, seed=10 + z)[0][0][..., 1]
    viewer, widget = large_viewer(open_widget)
    viewer.layers.remove("mosaic")
    image = viewer.add_image(stack, name="stack", contrast_limits=(0, 255))
    run_and_wait(widget, qtbot)
    layer = viewer.layers["stack [SANSA]"]
    assert isinstance(layer.data, zarr.Array) and layer.data.shape == (2, *LARGE)
    planes = [Image(stack[z], contrast_limits=tuple(image.contrast_limits)) for z in range(2)]
    expected = widget.model.segment(widget.plan().references, planes, tile_size="auto", overlap=OVERLAP)
    for z in range(2):
        np.testing.assert_array_equal(layer.data[z], expected[z].labels)
    assert "2 of 2 images segmented in 18 tiles" in widget.status.text()


def test_the_dock_says_next_to_the_slider_that_tiled_results_keep_their_threshold(open_widget, qtbot):
    viewer, widget = large_viewer(open_widget)
    run_and_wait(widget, qtbot)
    labels = np.asarray(viewer.layers["mosaic [SANSA]"].data).copy()
    note = widget.controls.threshold_note
    assert note.text() == ""
    widget.controls.threshold.setValue(30)
    assert "segmented in tiles" in note.text() and "0.50" in note.text() and note.isVisibleTo(widget)
    qtbot.waitUntil(lambda: not widget.relabelling.pending, timeout=10_000)
    assert np.array_equal(np.asarray(viewer.layers["mosaic [SANSA]"].data), labels)  # kept as they were
    widget.controls.threshold.setValue(50)
    assert note.text() == "" and not note.isVisibleTo(widget)
