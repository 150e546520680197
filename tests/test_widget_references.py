"""References from any layer, instance masks, class names and stacks through the stack, in the widget."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sansa.plugin.panels.reference_list import NO_REFERENCE
from napari_sansa.samples import cells
from test_widget import result, run_and_wait


def instance_mask(shape=(256, 320), n=50, seed=0) -> np.ndarray:
    """An instance mask as cellpose or stardist write it: each small object its own id."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint16)
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    for label in range(1, n + 1):
        r, c = rng.uniform(10, shape[0] - 10), rng.uniform(10, shape[1] - 10)
        mask[(rr - r) ** 2 + (cc - c) ** 2 <= 25] = label
    return mask


def rows(widget) -> dict[str, str]:
    widget.references_panel.describe()
    return {name: combo.currentText() for name, combo in widget.references_panel.layer_list.rows.items()}


def test_a_labels_layer_added_by_script_on_a_stack_is_a_reference(open_widget, qtbot):
    viewer, widget = open_widget("cells_stack")
    stack = viewer.layers["cells stack"]
    mask = np.zeros(stack.data.shape, np.uint8)
    mask[1, 100:140, 100:150] = 1
    viewer.add_labels(mask, name="cells stack [reference]")
    assert rows(widget) == {"cells stack [reference]": "cells stack"}
    widget.stack_mode.setCurrentText("independent planes")
    run_and_wait(widget, qtbot)
    out = result(viewer, "cells stack")
    assert sorted(k.plane for k in widget.scores if k.plane) == [(p,) for p in range(8) if p != 1]
    assert not out.data[1].any()  # the annotated plane is no target
    assert "cells stack [reference] [SANSA]" not in [lyr.name for lyr in viewer.layers]


def test_a_mask_opened_from_a_tiff_file_is_a_reference(open_widget, qtbot, tmp_path):
    viewer, widget = open_widget()
    path = tmp_path / "cells_0_mask.tif"
    tifffile.imwrite(path, cells(6)[0][1])
    viewer.open(str(path), layer_type="labels")
    # every "cells i" image fits (same size): the layer's name picks "cells 0"
    assert rows(widget)["cells_0_mask"] == "cells 0"
    job = widget.plan()
    assert len(job.references) == 1 and job.classes == [1, 2]
    np.testing.assert_array_equal(job.references[0].prompts[1][0].mask, cells(6)[0][1] == 1)
    run_and_wait(widget, qtbot)
    assert {f"cells {i} [SANSA]" for i in range(1, 6)} <= {lyr.name for lyr in viewer.layers}


def test_a_points_layer_added_by_the_viewer_is_a_reference(open_widget, qtbot):
    viewer, widget = open_widget()
    widget.prompt_image.setCurrentText("cells 2")
    points = viewer.add_points([[100, 120], [60, 200]], name="Points")
    # all six images fit and the name names none: the image chosen in the widget
    assert rows(widget) == {"Points": "cells 2"}
    job = widget.plan()
    assert [widget._names[k.image_id] for k in job.reference_keys] == ["cells 2"]
    np.testing.assert_allclose(job.references[0].prompts[1][0].coords, points.data)
    run_and_wait(widget, qtbot)
    assert "cells 0 [SANSA]" in [lyr.name for lyr in viewer.layers]


def test_points_on_a_scaled_image_land_on_its_pixels(open_widget):
    viewer, widget = open_widget()
    for layer in list(viewer.layers):
        layer.scale = (0.5, 0.5)
    # napari's own "new points" layer has scale 1: world coordinates 50, 60 are pixel 100, 120
    viewer.add_points([[50, 60]], name="cells 3 clicks")
    job = widget.plan()
    np.testing.assert_allclose(job.references[0].prompts[1][0].coords, [[100, 120]])


def test_an_instance_mask_of_50_ids_runs_as_one_class(open_widget, qtbot):
    viewer, widget = open_widget()
    viewer.add_labels(instance_mask(), name="cells 0 cellpose")
    widget.references_panel.describe()
    assert widget.references_panel.layer_list.notes["cells 0 cellpose"] == "50 object ids: one class"
    job = widget.plan()
    assert job.classes == [1] and len(job.references[0].prompts[1]) == 1
    run_and_wait(widget, qtbot)
    assert set(np.unique(result(viewer, "cells 1").data)) <= {0, 1}
    widget.references_panel.mask_classes.setCurrentText("each value a class")
    assert widget.plan().classes == list(range(1, 51))


def test_the_layer_list_follows_layers_and_its_choices_are_honoured(open_widget, qtbot, errors):
    viewer, widget = open_widget()
    mask = viewer.add_labels(cells(6)[0][1], name="my mask")
    widget.prompt_image.setCurrentText("cells 4")
    assert rows(widget) == {"my mask": "cells 4"}
    mask.name = "cells 1 truth"  # renamed: the name now picks the image
    assert rows(widget) == {"cells 1 truth": "cells 1"}
    small = viewer.add_labels(np.ones((10, 10), np.uint8), name="tiny")
    assert rows(widget)["tiny"] == NO_REFERENCE  # fits no image
    viewer.layers.remove(small)
    assert list(rows(widget)) == ["cells 1 truth"]

    widget.references_panel.layer_list.set_choice("cells 1 truth", "cells 5")
    job = widget.plan()
    assert [widget._names[k.image_id] for k in job.reference_keys] == ["cells 5"]
    widget.references_panel.layer_list.set_choice("cells 1 truth", NO_REFERENCE)
    assert widget.run() is None
    assert "No references" in errors[-1]


def test_result_layers_are_never_references(open_widget, qtbot):
    viewer, widget = open_widget()
    viewer.add_labels(cells(6)[0][1], name="cells 0 mask")
    widget.objects_panel.output.setCurrentText("objects")
    run_and_wait(widget, qtbot)
    assert "cells 1 [SANSA objects]" in viewer.layers and "cells 1 [SANSA]" in viewer.layers
    assert list(rows(widget)) == ["cells 0 mask"]
    assert len(widget.plan().references) == 1


def test_class_names_reach_the_result_layers(open_widget, qtbot):
    viewer, widget = open_widget()
    viewer.add_labels(cells(6)[0][1], name="cells 0 mask")
    panel = widget.references_panel
    panel.class_id.setValue(1)
    panel.class_name.setText("nucleus")
    panel.class_name.textEdited.emit("nucleus")
    panel.class_id.setValue(2)
    assert panel.class_name.text() == ""
    panel.class_name.textEdited.emit("granule")
    panel.describe()
    assert "class 1 (nucleus), 2 (granule)" in panel.summary.text()
    run_and_wait(widget, qtbot)
    features = result(viewer, "cells 3").features
    assert dict(zip(features["index"], features["class"])) == {0: "background", 1: "nucleus", 2: "granule"}


@pytest.fixture
def volume():
    """A 6-plane volume of one bright blob drifting across the planes."""
    planes = np.zeros((6, 96, 128), np.uint8) + 20
    rr, cc = np.ogrid[:96, :128]
    for z in range(6):
        planes[z][(rr - 48) ** 2 + (cc - 30 - 12 * z) ** 2 <= 225] = 220
    return planes


def test_a_stack_through_the_stack_and_propagating_from_a_corrected_plane(open_widget, qtbot, volume):
    viewer, widget = open_widget()
    for i in range(6):
        viewer.layers.remove(f"cells {i}")
    viewer.add_image(volume, name="volume")
    seed = np.zeros(volume.shape, np.uint8)
    seed[2] = volume[2] > 100
    viewer.add_labels(seed, name="volume seed")
    assert widget.through_stacks  # the default for stacks
    run_and_wait(widget, qtbot)
    assert sorted(k.plane for k in widget.scores) == [(0,), (1,), (3,), (4,), (5,)]
    out = result(viewer, "volume")
    assert not out.data[2].any()

    # the user corrects plane 3, accepts plane 5, and propagates from plane 3: only plane 4 is redone
    out.data[3] = 0
    out.data[3, 40:56, 60:76] = 1
    widget.accept(next(k for k in widget.scores if k.plane == (5,)))
    before = out.data[5].copy()
    key = next(k for k in widget.scores if k.plane == (3,))
    worker = widget.propagate_from(key)
    done = []
    worker.yielded.connect(lambda e: done.append(e.key.plane) if type(e).__name__ == "TargetDone" else None)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert done == [(4,)]
    assert key in widget.locked
    np.testing.assert_array_equal(out.data[5], before)  # locked: untouched
    assert out.data[3, 40:56, 60:76].all() and out.data[3].sum() == 256  # the correction stays


def test_propagating_from_a_plane_needs_a_stack_plane_with_labels(open_widget, qtbot, errors):
    viewer, widget = open_widget()
    assert widget.propagate_from() is None
    assert "Select a plane of a stack" in errors[-1]


def test_a_reference_set_saved_in_the_widget_gives_the_cli_the_same_labels(
    open_widget, qtbot, tmp_path, checkpoints, capsys
):
    import imageio.v3 as iio

    from napari_sansa.cli.main import main

    viewer, widget = open_widget()
    viewer.add_labels(cells(6)[0][1], name="cells 0 mask")
    widget.references_panel.class_name.setText("nucleus")
    widget.references_panel.class_name.textEdited.emit("nucleus")
    run_and_wait(widget, qtbot)
    widget.save_references(tmp_path / "refs")
    with pytest.raises(Exception, match="already exists"):
        widget.save_references(tmp_path / "refs")

    targets = tmp_path / "targets"
    targets.mkdir()
    for i in range(1, 4):
        iio.imwrite(targets / f"cells {i}.png", viewer.layers[f"cells {i}"].data)
    sam2, adapter = checkpoints
    args = ["segment", "--references", str(tmp_path / "refs"), str(targets), "--out", str(tmp_path / "out")]
    args += ["--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu", "--image-size", "256"]
    assert main(args) == 0, capsys.readouterr().err
    for i in range(1, 4):
        cli = iio.imread(tmp_path / "out" / f"cells {i}_labels.png")
        np.testing.assert_array_equal(cli, result(viewer, f"cells {i}").data)
    assert "nucleus" in (tmp_path / "out" / "classes.csv").read_text()


def test_saving_references_without_any_says_so(open_widget, errors):
    viewer, widget = open_widget()
    with pytest.raises(Exception, match="no references to save"):
        widget.save_references("unused")


def test_objects_of_a_stack_run_through_the_stack_keep_one_id_through_the_planes(make_napari_viewer):
    import pandas as pd

    from napari_sansa.plugin.core.linking import linked
    from napari_sansa.plugin.core.session import ImageSource, TargetKey
    from napari_sansa.plugin.viewer.objects_layers import ObjectLayers, objects_layer

    def linked_stacks(stacks):
        return {image_id: linked(stack, tables) for image_id, (stack, tables) in stacks.items()}

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((4, 64, 64), np.uint8), name="volume")
    source = ImageSource(image.metadata.setdefault("sansa_id", "v"), "volume", image.data, 1)
    layers = ObjectLayers(viewer)
    rr, cc = np.ogrid[:64, :64]
    for z in range(4):  # two discs drifting right; per plane, ids 1 and 2 in a varying order
        plane = np.zeros((64, 64), np.int32)
        first, second = (1, 2) if z % 2 else (2, 1)
        plane[(rr - 20) ** 2 + (cc - 15 - 2 * z) ** 2 <= 36] = first
        plane[(rr - 45) ** 2 + (cc - 40 - 2 * z) ** 2 <= 36] = second
        table = pd.DataFrame({"label": [1, 2], "class": [1, 1], "area": [113, 113]})
        layers.write(source, TargetKey("v", (z,)), plane, table)
    for image_id, (stack, tables) in linked_stacks(layers.to_link(["v"])).items():  # a worker's work
        layers.set_linked(image_id, stack, tables)
    layers.sync()
    data = objects_layer(viewer, "v").data
    top = {int(data[z, 20, 15 + 2 * z]) for z in range(4)}
    bottom = {int(data[z, 45, 40 + 2 * z]) for z in range(4)}
    assert len(top) == 1 and len(bottom) == 1 and top != bottom
    features = objects_layer(viewer, "v").features
    assert len(features) == 8 and set(features["label"]) == top | bottom
    assert (features["index"] == features["label"]).all()


def test_an_annotated_image_is_segmented_too_once_checked(open_widget, qtbot):
    from qtpy.QtCore import Qt

    viewer, widget = open_widget()
    for layer in [lyr for lyr in viewer.layers if lyr.name not in ("cells 0", "cells 1")]:
        viewer.layers.remove(layer)
    widget.prompt_image.setCurrentText("cells 0")
    points = widget.add_prompt_layer("points")
    points.add([[100, 120]])
    items = {widget.targets.item(i).text(): widget.targets.item(i) for i in range(widget.targets.count())}
    assert items["cells 0  (reference)"].checkState() == Qt.Unchecked  # a reference only, by default
    assert items["cells 1"].checkState() == Qt.Checked
    items["cells 0  (reference)"].setCheckState(Qt.Checked)
    items["cells 1"].setCheckState(Qt.Unchecked)
    viewer.add_image(cells(3)[2][0], name="late")  # the list is rebuilt: the user's choices stay
    items = {widget.targets.item(i).text(): widget.targets.item(i) for i in range(widget.targets.count())}
    assert items["cells 0  (reference)"].checkState() == Qt.Checked
    assert items["cells 1"].checkState() == Qt.Unchecked
    items["late"].setCheckState(Qt.Unchecked)

    run_and_wait(widget, qtbot)
    names = [lyr.name for lyr in viewer.layers]
    assert "cells 0 [SANSA]" in names and "cells 1 [SANSA]" not in names
    assert result(viewer, "cells 0").data.shape == (256, 320)
    assert "1 of 1 images segmented" in widget.status.text()


def test_a_large_lazy_mask_is_named_in_the_summary_not_read_and_the_run_reads_it(open_widget):
    """Summaries follow every layer event: a big mask opened lazily must not be computed for each."""
    import dask.array as da

    from napari_sansa.plugin.panels.references import LAZY_NOTE

    viewer, widget = open_widget(None)
    shape, chunks = (40, 512, 512), (1, 512, 512)
    viewer.add_image(da.zeros(shape, chunks=chunks, dtype=np.uint8), name="volume", contrast_limits=(0, 1))
    labels = np.zeros(shape, np.uint8)
    labels[3, 100:200, 150:250] = 1
    planes_read = []

    def counted(block):
        planes_read.append(block.shape)
        return block

    mask = da.from_array(labels, chunks=chunks).map_blocks(counted, meta=np.array((), np.uint8))
    viewer.add_labels(mask, name="volume mask")
    widget.references_panel.describe()
    assert len(planes_read) < shape[0]  # napari draws the plane on screen; the summary reads nothing
    assert f"volume: mask volume mask ({LAZY_NOTE})" in widget.references_label.text()
    assert widget.references_panel.layer_list.notes["volume mask"] == LAZY_NOTE
    job = widget.plan()  # the run reads it
    assert [k.plane for k in job.reference_keys] == [(3,)]


def test_a_reference_set_opened_with_napari_brings_its_images_and_prompts_ready_to_run(
    open_widget, qtbot, tmp_path, samples
):
    import npe2

    import napari_sansa as ns
    from napari_sansa.plugin.viewer import layers as L

    image0, labels0 = samples[0]
    references = [
        ns.Reference(ns.Image(image0), {1: ns.Mask(labels0 == 1), 2: ns.Mask(labels0 == 2)}),
        ns.Reference(
            ns.Image(samples[1][0]),
            {1: [ns.Box(10, 20, 90, 120), ns.Points([[40, 50], [5, 5]], labels=[1, 0])]},
        ),
    ]
    sources = [{"image": "cells 0"}, {"image": "cells 1"}]
    folder = tmp_path / "set"
    ns.save_references(folder, references, {1: "nucleus"}, sources=sources)

    viewer, widget = open_widget(sample=None)  # napari's plugins are discovered
    # npe2's reader (what File › Open and drag and drop use), on the set's references.json
    data = npe2.read([str(folder / "references.json")], plugin_name="napari-sansa", stack=False)
    names = [(meta["name"], kind) for _, meta, kind in data]
    assert names == [  # one prompt layer per kind: both masks in one Labels layer
        ("cells 0", "image"),
        ("cells 0 prompts", "labels"),
        ("cells 1", "image"),
        ("cells 1 prompts", "points"),
        ("cells 1 prompts", "shapes"),
    ]
    for path in (folder, tmp_path):  # folders are napari's and other plugins' (File › Open Folder)
        with pytest.raises(ValueError):
            npe2.read([str(path)], plugin_name="napari-sansa", stack=False)

    viewer._open_or_raise_error([str(folder / "references.json")])  # File › Open: no reader choice
    assert [layer.name for layer in L.image_layers(viewer)] == ["cells 0", "cells 1"]
    np.testing.assert_array_equal(viewer.layers["cells 0"].data, image0)
    np.testing.assert_array_equal(viewer.layers["cells 0 prompts"].data, labels0 * np.isin(labels0, [1, 2]))
    job = widget.plan()
    assert len(job.references) == 2 and job.classes == [1, 2]
    viewer.add_image(samples[2][0], name="target")
    run_and_wait(widget, qtbot)
    assert result(viewer, "target").data.any()
