"""The widget's "objects" output: a Labels layer of objects with their table, listed and exported."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import tifffile
from qtpy.QtCore import Qt

from test_widget import draw_labels_reference, run_and_wait


def test_objects_output_gives_a_layer_with_its_table_and_exports_it(open_widget, qtbot, tmp_path, exported):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    for i in (1, 3, 4, 5):  # one target is enough
        widget.targets.item(i).setCheckState(Qt.Unchecked)
    widget.objects_panel.output.setCurrentText("objects")
    run_and_wait(widget, qtbot)

    layer = viewer.layers["cells 2 [SANSA objects]"]
    classes = viewer.layers["cells 2 [SANSA]"].data
    features = layer.features
    assert layer.data.dtype == np.int32 and layer.data.shape == classes.shape
    assert not layer.data[classes == 0].any()
    ids = np.unique(layer.data[layer.data > 0])
    assert sorted(features["index"]) == sorted(features["label"]) == list(ids)
    assert features["area"].sum() == np.count_nonzero(layer.data)
    assert "mean_intensity_0" in features and features["score"].notna().all()
    status = layer.get_status(tuple(np.argwhere(layer.data == ids[0])[0]), world=False)
    assert f"label: {ids[0]}" in status["coordinates"]  # napari shows the object's row on hover

    listed = [
        widget.objects_panel.list.item(i).data(Qt.UserRole) for i in range(widget.objects_panel.list.count())
    ]
    assert listed, "objects are listed for review"
    scores = features.set_index("label")["score"]
    assert [scores[label] for _, label, _, _ in listed] == sorted(scores)[: len(listed)]
    widget.objects_panel.list.setCurrentRow(0)
    assert viewer.layers.selection.active.name == layer.name and layer.selected_label == listed[0][1]

    written = exported(widget, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert "cells 2_objects.csv" in names and "cells 2_objects.tif" in names
    from napari_sansa.plugin.exports import export_summary

    # what the notification says (one target was run)
    assert export_summary(written) == "1 label file(s), the objects of 1 image(s) and the references"
    table = pd.read_csv(tmp_path / "out" / "cells 2_objects.csv")
    assert len(table) == len(features) and "index" not in table
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "cells 2_objects.tif"), layer.data)

    # Export…'s menu adds QuPath GeoJSON and COCO: one feature and one annotation per object
    for action in widget.run_files.format_actions.values():
        action.setChecked(True)
    assert widget.run_files.export_formats() == ("geojson", "coco")
    written = exported(widget, tmp_path / "tools", formats=widget.run_files.export_formats())
    assert export_summary(written).endswith("1 QuPath GeoJSON file(s), coco.json and the references")
    geojson = json.loads((tmp_path / "tools" / "cells 2_objects.geojson").read_text())
    coco = json.loads((tmp_path / "tools" / "coco.json").read_text())
    assert len(geojson["features"]) == len(coco["annotations"]) == len(features)
    assert {f["properties"]["objectType"] for f in geojson["features"]} == {"detection"}
    assert sorted(a["area"] for a in coco["annotations"]) == sorted(features["area"])
    assert [i["file_name"] for i in coco["images"]] == ["cells 2"]


def stack_with_objects(open_widget):
    """The stack sample with a box-shaped mask on its first plane, objects asked for."""
    viewer, widget = open_widget("cells_stack")
    widget.prompt_image.setCurrentText("cells stack")
    prompt = widget.add_prompt_layer("labels")
    prompt.data[0, 100:140, 100:150] = 1
    prompt.refresh()
    widget.objects_panel.output.setCurrentText("objects")
    return viewer, widget


def test_a_stack_gets_objects_per_plane_with_ids_unique_in_the_layer(open_widget, qtbot):
    viewer, widget = stack_with_objects(open_widget)
    widget.stack_mode.setCurrentText("independent planes")  # through the stack links objects up
    run_and_wait(widget, qtbot)
    layer = viewer.layers["cells stack [SANSA objects]"]
    features = layer.features
    assert set(features["plane"]) == set(range(1, layer.data.shape[0]))
    assert features["label"].is_unique
    for plane in set(features["plane"]):
        on_plane = features.loc[features["plane"] == plane, "label"]
        assert set(on_plane) == set(np.unique(layer.data[plane][layer.data[plane] > 0]))


def test_objects_of_a_stack_run_through_it_are_linked_through_the_planes_in_a_worker(open_widget, qtbot):
    from napari_sansa.engine.objects.split import link_planes

    viewer, widget = stack_with_objects(open_widget)
    assert widget.through_stacks
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: not widget.objects_panel.linking.running(), timeout=60_000)
    layer = viewer.layers["cells stack [SANSA objects]"]
    np.testing.assert_array_equal(layer.data, link_planes(layer.data))  # one id per object through the planes
    features = layer.features
    assert (features.groupby("label")["plane"].nunique() > 1).any()  # objects that span planes
    for plane in set(features["plane"]):
        on_plane = features.loc[features["plane"] == plane, "label"]
        assert set(on_plane) == set(np.unique(layer.data[plane][layer.data[plane] > 0]))
