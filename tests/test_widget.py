"""The napari widget, driven as a user would, with a tiny random-weight model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_sansa import Mask, Reference, SansaError
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.samples import cells

WIDGET = ("napari-sansa", "SANSA few-shot segmentation")


def run_and_wait(widget, qtbot, timeout=120_000):
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)
    return worker


def draw_labels_reference(widget, image_name="cells 0", classes=(1, 2)):
    widget.prompt_image.setCurrentText(image_name)
    layer = widget.add_prompt_layer("labels")
    truth = cells(6)[0][1]
    for c in classes:
        layer.data[truth == c] = c
    layer.refresh()
    return layer


def result(viewer, name):
    return viewer.layers[f"{name} [SANSA]"]


def test_napari_starts_without_importing_torch():
    code = "import sys, napari_sansa, napari_sansa.plugin.widget; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_labels_reference_with_two_classes_labels_every_other_image(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    run_and_wait(widget, qtbot)
    image, truth = cells(6)[0]
    reference = Reference(image, {1: Mask(truth == 1), 2: Mask(truth == 2)})
    expected = widget.model.segment([reference], [image for image, _ in cells(6)[1:]])
    for i, prediction in enumerate(expected, start=1):
        layer = result(viewer, f"cells {i}")
        assert layer.data.shape == (256, 320) and layer.data.dtype == np.uint8
        np.testing.assert_array_equal(layer.data, prediction.labels)  # the engine's labels, as they are
    assert "cells 0 [SANSA]" not in [lyr.name for lyr in viewer.layers]  # the reference is no target
    assert "5 of 5 images segmented" in widget.status.text()
    assert "for 5 image(s)" in widget.estimate
    assert widget.model is not None and widget.model.info.sam2_size == "tiny"
    # the model line says what runs: "auto" precision decided for this machine
    assert (
        widget.sections.section("Model").header.text()
        == f"Model: SAM2-tiny, {widget.model.config.precision} on cpu"
    )


def test_points_with_a_negative_click_and_shapes_are_references(open_widget, qtbot):
    viewer, widget = open_widget()
    widget.prompt_image.setCurrentText("cells 0")
    points = widget.add_prompt_layer("points")
    points.add([[100, 120]])
    L.toggle_point_sign(points)  # what the N key does
    points.add([[10, 10]])
    assert list(points.features["sign"]) == ["positive", "negative"]
    widget.prompt_image.setCurrentText("cells 1")
    widget.class_id.setValue(2)
    shapes = widget.add_prompt_layer("shapes")
    shapes.add([[50, 60], [120, 160]], shape_type="rectangle")
    shapes.add([[30, 30], [60, 90], [40, 150]], shape_type="path")
    job = widget.plan()
    assert len(job.references) == 2 and job.classes == [1, 2]
    clicks = job.references[0].prompts[1][0]
    assert list(clicks.labels) == [1, 0]
    run_and_wait(widget, qtbot)
    assert {f"cells {i} [SANSA]" for i in range(2, 6)} <= {lyr.name for lyr in viewer.layers}


def test_a_stack_is_labelled_plane_by_plane_in_one_layer(open_widget, qtbot):
    viewer, widget = open_widget("cells_stack")
    widget.prompt_image.setCurrentText("cells stack")
    layer = widget.add_prompt_layer("labels")
    layer.data[3, 100:140, 100:150] = 1
    layer.refresh()
    run_and_wait(widget, qtbot)
    out = result(viewer, "cells stack")
    assert out.data.shape == (8, 256, 320)
    assert sorted(k.plane for k in widget.scores) == [(p,) for p in range(8) if p != 3]
    assert not out.data[3].any()  # the reference plane is not overwritten


def test_cancel_keeps_the_finished_images(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    worker = widget.run()
    worker.yielded.connect(lambda event: widget.cancel() if type(event).__name__ == "TargetDone" else None)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    results = [lyr for lyr in viewer.layers if lyr.name.endswith("[SANSA]")]
    assert 1 <= len(results) < 5
    assert len(widget.scores) == len(results)
    assert "cancelled" in widget.status.text()


def test_edited_and_accepted_targets_are_never_overwritten(open_widget, qtbot):
    viewer, widget = open_widget()
    reference = draw_labels_reference(widget, classes=(1,))
    run_and_wait(widget, qtbot)
    edited = result(viewer, "cells 1")
    edited.paint((5, 5), 2)  # the user corrects a pixel: the target is now locked
    before_edit = edited.data.copy()
    key_2 = next(k for k in widget.scores if widget._names[k.image_id] == "cells 2")
    widget.accept(key_2)
    accepted = result(viewer, "cells 2").data.copy()
    unlocked_before = result(viewer, "cells 3").data.copy()

    reference.data[...] = 0
    reference.data[20:60, 20:60] = 1  # a different reference changes the other results
    reference.refresh()
    run_and_wait(widget, qtbot)
    np.testing.assert_array_equal(result(viewer, "cells 1").data, before_edit)
    np.testing.assert_array_equal(result(viewer, "cells 2").data, accepted)
    assert not np.array_equal(result(viewer, "cells 3").data, unlocked_before)
    assert "3 of 3 images segmented" in widget.status.text()


def test_use_as_reference_adds_a_shot(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget, classes=(1,))
    run_and_wait(widget, qtbot)
    assert len(widget.plan().references) == 1
    corrected = result(viewer, "cells 1")
    corrected.data[...] = cells(6)[1][1] == 1  # the user fixes the result
    key = next(k for k in widget.scores if widget._names[k.image_id] == "cells 1")
    widget.use_as_reference(key)
    job = widget.plan()
    assert len(job.references) == 2
    assert all(widget._names[k.image_id] != "cells 1" for k, _ in job.targets)


def test_review_queue_lists_least_confident_first_and_shows_the_target(open_widget, qtbot):
    viewer, widget = open_widget("cells_stack")
    widget.prompt_image.setCurrentText("cells stack")
    layer = widget.add_prompt_layer("labels")
    layer.data[0, 100:140, 100:150] = 1
    layer.refresh()
    run_and_wait(widget, qtbot)
    order = widget.review_order()
    scores = [widget.scores[k] for k in order]
    assert scores == sorted(scores) and widget.review.count() == 7
    widget.review.setCurrentRow(3)
    assert viewer.layers.selection.active.name == "cells stack [SANSA]"
    assert viewer.dims.current_step[0] == order[3].plane[0]


def test_export_writes_in_a_worker_and_cancel_leaves_only_whole_files(open_widget, qtbot, tmp_path):
    import imageio.v3 as iio

    viewer, widget = open_widget()
    draw_labels_reference(widget)
    run_and_wait(widget, qtbot)
    out = tmp_path / "out"
    worker = widget.export(out, formats=("geojson",))
    assert worker is not None and not isinstance(worker, list)  # the files are written in a worker
    job = widget.run_files.job
    assert not job.cancel_button.isHidden()  # with a progress bar and Cancel in the dock
    job.cancel_button.click()
    qtbot.waitUntil(lambda: not job.running(), timeout=60_000)
    assert widget.run_files.written is None and job.status.text() == "Export cancelled."
    assert job.cancel_button.isHidden()
    labels = sorted(out.glob("*.png"))
    assert len(labels) < 5 and not (out / "references").exists()  # stopped before the end
    for path in labels:  # what was written is whole
        np.testing.assert_array_equal(iio.imread(path), result(viewer, path.stem).data)
    assert not [p for p in out.iterdir() if p.suffix not in (".png", ".geojson")]  # no partial file

    widget.export(out, overwrite=True, formats=("geojson",))  # the export done anew, whole
    qtbot.waitUntil(lambda: not job.running(), timeout=60_000)
    assert len([p for p in widget.run_files.written if p.suffix == ".png"]) == 5
    assert job.status.text().startswith("Exported 5 label file(s), 5 QuPath GeoJSON file(s)")


def test_export_writes_labels_and_a_reference_set_that_loads_anywhere(
    open_widget, qtbot, tmp_path, monkeypatch, exported
):
    import dataclasses

    import imageio.v3 as iio

    from napari_sansa.engine.errors import SansaError

    viewer, widget = open_widget()
    draw_labels_reference(widget)
    widget.prompt_image.setCurrentText("cells 1")
    points = widget.add_prompt_layer("points")
    points.add([[60, 60]])
    run_and_wait(widget, qtbot)
    plan = widget.plan
    monkeypatch.setattr(widget, "plan", lambda: dataclasses.replace(plan(), class_names={1: "nucleus"}))
    out = tmp_path / "out"
    written = exported(widget, out)
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == [
        "cells 2.png",
        "cells 3.png",
        "cells 4.png",
        "cells 5.png",
        "classes.csv",
        "references/references.json",
    ]
    np.testing.assert_array_equal(iio.imread(out / "cells 2.png"), result(viewer, "cells 2").data)
    assert (out / "classes.csv").read_text() == "id,name\n1,nucleus\n2,\n"
    document = json.loads((out / "references" / "references.json").read_text())
    assert document["model"]["sam2_size"] == "tiny" and document["settings"]["image_size"] == 256
    assert [r["source"]["image"] for r in document["references"]] == ["cells 0", "cells 1"]
    with pytest.raises(SansaError, match="already exist"):
        widget.export(out)
    from qtpy.QtWidgets import QFileDialog, QMessageBox, QPushButton

    asked = []  # Export… again into the same folder: the widget asks before replacing
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(out))
    monkeypatch.setattr(
        QMessageBox, "question", lambda _, title, text: asked.append(title) or QMessageBox.Yes
    )
    (out / "cells 2.png").write_bytes(b"not the labels")
    next(b for b in widget.findChildren(QPushButton) if b.text() == "Export…").click()
    assert asked == ["Overwrite?"]
    np.testing.assert_array_equal(iio.imread(out / "cells 2.png"), result(viewer, "cells 2").data)

    # the images are open: the prompts go onto them
    viewer2, widget2 = open_widget()
    assert widget2.load_run(out / "references") == 2
    assert len(L.image_layers(viewer2)) == 6
    job = widget2.plan()
    assert len(job.references) == 2 and job.classes == [1, 2]
    np.testing.assert_array_equal(job.references[0].prompts[1][0].mask, cells(6)[0][1] == 1)

    # a fresh napari without the images: the set brings its own, and a run works from it
    viewer3, widget3 = open_widget(None)
    assert widget3.load_run(out / "references" / "references.json") == 2
    assert [layer.name for layer in L.image_layers(viewer3)] == ["cells 0", "cells 1"]
    np.testing.assert_array_equal(viewer3.layers["cells 0"].data, cells(6)[0][0])
    assert len([lyr for lyr in viewer3.layers if L.PROMPTS_FOR in lyr.metadata]) == 3
    viewer3.add_image(cells(6)[2][0], name="new image")
    run_and_wait(widget3, qtbot)
    assert result(viewer3, "new image").data.shape == (256, 320)
    assert "1 of 1 images segmented" in widget3.status.text()


def test_a_run_record_of_an_older_version_still_loads_onto_the_open_images(open_widget, tmp_path):
    import tifffile

    from napari_sansa.plugin.core.record import FORMAT

    mask = np.zeros((256, 320), np.uint8)
    mask[100:140, 100:150] = 1
    (tmp_path / "references").mkdir()
    tifffile.imwrite(tmp_path / "references" / "m.tif", mask)
    record = {
        "format": FORMAT,
        "model": {"name": "local files"},
        "settings": {"image_size": 512},
        "references": [
            {
                "image": "cells 0",
                "plane": [],
                "prompts": {"1": [{"type": "mask", "file": "references/m.tif"}]},
            },
            {
                "image": "cells 3",
                "plane": [],
                "prompts": {"2": [{"type": "box", "corners": [10, 20, 90, 120]}]},
            },
        ],
    }
    (tmp_path / "sansa_run.json").write_text(json.dumps(record))
    viewer, widget = open_widget()
    assert widget.load_run(tmp_path / "sansa_run.json") == 2
    assert len(L.image_layers(viewer)) == 6 and widget.image_size.value() == 512
    job = widget.plan()
    assert job.classes == [1, 2]
    np.testing.assert_array_equal(job.references[0].prompts[1][0].mask, mask == 1)


def test_problems_are_notifications_not_tracebacks(open_widget, qtbot, errors):
    viewer, widget = open_widget()
    assert widget.run() is None
    assert "No references" in errors[-1]
    draw_labels_reference(widget)
    widget.model_choice.setCurrentText("local files")
    widget.sam2_file.edit.setText("/nowhere/sam2.pt")
    run_and_wait(widget, qtbot)
    assert "does not exist" in errors[-1] and "/nowhere/sam2.pt" in errors[-1]
    assert widget.run_button.isEnabled()


def test_choices_are_remembered_between_sessions(open_widget, qtbot, monkeypatch):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    widget.precision.setCurrentText("fp32")  # not the default (auto), and native here
    widget.stack_mode.setCurrentText("independent planes")
    widget.references_panel.mask_classes.setCurrentText("one class (instance mask)")
    widget.objects_panel.output.setCurrentText("objects")
    run_and_wait(widget, qtbot)
    monkeypatch.delenv("NAPARI_SANSA_SAM2_CHECKPOINT")
    _, again = open_widget()
    assert again.precision.currentText() == "fp32"
    assert again.stack_mode.currentText() == "independent planes"
    assert again.references_panel.mask_classes.currentText() == "one class (instance mask)"
    assert again.objects_panel.output.currentText() == "objects"
    assert again.image_size.value() == 256
    assert again.model_choice.currentText() == "local files"


def test_a_dask_stack_is_read_plane_by_plane(open_widget, qtbot):
    import dask.array as da

    viewer, widget = open_widget("cells")
    planes = np.stack([image[..., 2] for image, _ in cells(4, seed=9)])
    reads = []

    def load(block_info=None):
        z = block_info[None]["chunk-location"][0]
        reads.append(z)
        return planes[z][None]

    lazy = da.map_blocks(
        load, dtype=planes.dtype, chunks=((1,) * 4, (256,), (320,)), meta=np.array((), planes.dtype)
    )
    viewer.add_image(lazy, name="lazy stack")
    widget._refresh_layers()
    widget.prompt_image.setCurrentText("lazy stack")
    layer = widget.add_prompt_layer("labels")
    layer.data[1, 80:120, 90:140] = 1
    reads.clear()
    for i in range(widget.targets.count()):  # only the stack's other planes this time
        widget.targets.item(i).setCheckState(Qt.Unchecked)
    run_and_wait(widget, qtbot)
    assert result(viewer, "lazy stack").data.shape == (4, 256, 320)
    assert sorted(k.plane for k in widget.scores) == [(0,), (2,), (3,)]
    assert set(reads) == {0, 1, 2, 3} and len(reads) <= 12  # the reference and target planes, one at a time


def test_sample_data_and_labels_writer_from_the_manifest(tmp_path):
    from napari_sansa.plugin.contributions import sample_cells, sample_cells_stack, write_labels_layer

    layers = sample_cells()
    assert len(layers) == 6 and all(kind == "image" for _, _, kind in layers)
    assert sample_cells_stack()[0][0].shape == (8, 256, 320)
    labels = np.zeros((5, 6), np.int32)  # napari's labels dtype
    labels[2, 3] = 300
    written = write_labels_layer(str(tmp_path / "out.png"), labels, {})
    assert written == [str(tmp_path / "out.png")]
    from napari_sansa.files.images import read_image

    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), labels)
    with pytest.raises(SansaError, match="save them as .tif"):  # a stack cannot be a PNG
        write_labels_layer(str(tmp_path / "stack.png"), np.zeros((4, 5, 6), np.uint16), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no .tif in its place


def test_layers_removed_renamed_or_painted_during_a_run_lose_nothing(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget, classes=(1,))
    seen = []

    def meddle(event):
        if type(event).__name__ != "TargetDone":
            return
        seen.append(event)
        if len(seen) == 1:
            painted = next(lyr for lyr in viewer.layers if lyr.name.endswith("[SANSA]"))
            painted.paint((3, 3), 7)  # the user corrects the first result while the run goes on
            viewer.layers["cells 4"].name = "renamed"
            viewer.layers.remove("cells 5")

    widget.run().yielded.connect(meddle)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    names = [lyr.name for lyr in viewer.layers]
    assert "renamed [SANSA]" not in names or "cells 4 [SANSA]" in names
    assert "cells 5 [SANSA]" not in names  # its image was closed: nothing written for it
    first = next(lyr for lyr in viewer.layers if lyr.name.endswith("[SANSA]"))
    assert first.data[3, 3] == 7
    assert any(k for k in widget.locked)


def test_closing_napari_during_a_run_stops_it_cleanly(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget, classes=(1,))
    worker = widget.run()
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    qtbot.waitUntil(lambda: any(lyr.name.endswith("[SANSA]") for lyr in viewer.layers), timeout=120_000)
    viewer.close()
    qtbot.waitUntil(lambda: bool(finished), timeout=120_000)


def test_a_target_that_fails_is_reported_and_the_others_finish(open_widget, qtbot, errors, monkeypatch):
    from napari_sansa.engine.errors import SansaError
    from napari_sansa.engine.runs import predicting

    original, calls = predicting.predict_batch, []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SansaError("this image is broken")
        return original(*args, **kwargs)

    monkeypatch.setattr(predicting, "predict_batch", fail_second)
    viewer, widget = open_widget()
    draw_labels_reference(widget, classes=(1,))
    run_and_wait(widget, qtbot)
    assert errors == ["Skipped cells 2: this image is broken"]
    assert "4 of 5 images segmented, 1 skipped" in widget.status.text()
    names = [lyr.name for lyr in viewer.layers]
    assert "cells 2 [SANSA]" not in names and "cells 5 [SANSA]" in names


def test_a_run_record_cannot_point_outside_its_folder(tmp_path):
    from napari_sansa.engine.errors import SansaError
    from napari_sansa.plugin.core.record import FORMAT, read_record

    (tmp_path / "secret.tif").write_bytes(b"x")
    folder = tmp_path / "export"
    folder.mkdir()
    for file in ("../secret.tif", str(tmp_path / "secret.tif")):
        record = {
            "format": FORMAT,
            "model": {},
            "settings": {},
            "references": [
                {"image": "cells 0", "plane": [], "prompts": {"1": [{"type": "mask", "file": file}]}}
            ],
        }
        (folder / "sansa_run.json").write_text(json.dumps(record))
        with pytest.raises(SansaError, match="outside its folder"):
            read_record(folder / "sansa_run.json")


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not valid JSON"),
        ('{"format": "something else"}', "not a napari-sansa run record"),
        ('{"format": "napari-sansa run", "references": [{"image": "a", "prompts": {"0": []}}]}', "bad class"),
        (
            '{"format": "napari-sansa run", "references": [{"image": "a", "prompts": {"1": [{"type": "box", "corners": [1, 2]}]}}]}',
            "box corners",
        ),
        (
            '{"format": "napari-sansa run", "references": [{"image": "a", "prompts": {"1": [{"type": "exec"}]}}]}',
            "unknown prompt",
        ),
    ],
    ids=["not-json", "other-format", "class-0", "short-box", "unknown-type"],
)
def test_damaged_run_records_are_refused_with_a_reason(tmp_path, content, message):
    from napari_sansa.engine.errors import SansaError
    from napari_sansa.plugin.core.record import read_record

    path = tmp_path / "sansa_run.json"
    path.write_text(content)
    with pytest.raises(SansaError, match=message):
        read_record(path)


def test_locked_labels_survive_cancelled_and_failing_reruns(open_widget, qtbot, monkeypatch):
    from napari_sansa.engine.errors import SansaError
    from napari_sansa.engine.runs import predicting

    viewer, widget = open_widget()
    reference = draw_labels_reference(widget, classes=(1,))
    run_and_wait(widget, qtbot)
    mine = result(viewer, "cells 1")
    mine.paint((10, 10), 5)
    kept = mine.data.copy()
    reference.data[:40] = 1  # new prompts: every unlocked target would change
    reference.refresh()

    worker = widget.run()  # cancelled re-run
    worker.yielded.connect(lambda e: widget.cancel() if type(e).__name__ == "TargetDone" else None)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    np.testing.assert_array_equal(result(viewer, "cells 1").data, kept)

    def broken(*args, **kwargs):
        raise SansaError("simulated failure")

    monkeypatch.setattr(predicting, "predict_batch", broken)  # failing re-run
    run_and_wait(widget, qtbot)
    assert "skipped" in widget.status.text()
    np.testing.assert_array_equal(result(viewer, "cells 1").data, kept)


def test_a_run_leaves_the_selected_layer_and_shows_its_progress_in_the_dock(open_widget, qtbot):
    import gc

    viewer, widget = open_widget()
    prompt = draw_labels_reference(widget)
    viewer.layers.selection.active = prompt
    progress = []
    worker = widget.run()
    worker.yielded.connect(
        lambda e: progress.append(widget.progress.value()) if type(e).__name__ == "TargetDone" else None
    )
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert progress == [1, 2, 3, 4, 5] and widget.progress.maximum() == 5
    assert widget.progress.isHidden()
    assert viewer.layers.selection.active.name == prompt.name  # adding result layers does not take it
    assert all(result(viewer, f"cells {i}").visible for i in range(1, 6))
    assert gc.get_freeze_count() == 0  # objects frozen for the run are collectable again


def test_cancelling_before_the_model_loads_leaves_no_layers(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    widget.run()
    widget.cancel()  # while the result layers are being prepared
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert not [lyr for lyr in viewer.layers if lyr.name.endswith("[SANSA]")]
    assert widget.model is None  # stopped before loading it
    assert "cancelled" in widget.status.text()


def test_a_result_layer_painted_before_its_labels_arrive_is_kept(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget, classes=(1,))

    def paint_last_and_cancel(event):
        if type(event).__name__ == "TargetDone" and not widget.runner.cancelled.is_set():
            result(viewer, "cells 5").paint((3, 3), 7)  # still empty: the run has not reached it
            widget.cancel()

    widget.run().yielded.connect(paint_last_and_cancel)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert result(viewer, "cells 5").data[3, 3] == 7
    assert not any(k for k in widget.scores if widget._names[k.image_id] == "cells 5")


def test_the_references_summary_follows_painting(open_widget, qtbot):
    viewer, widget = open_widget()
    widget.prompt_image.setCurrentText("cells 0")
    layer = widget.add_prompt_layer("labels")
    layer.paint((100, 100), 3)
    qtbot.waitUntil(lambda: "cells 0: class 3" in widget.references_label.text(), timeout=5_000)


def test_only_the_plane_on_screen_needs_a_refresh(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((4, 8, 8), np.uint8), scale=(2, 1, 1))
    viewer.dims.set_point(0, 4.0)  # world z = 4 is data plane 2
    assert L.shows_plane(viewer, layer, (2,)) and L.shows_plane(viewer, layer, ())
    assert not L.shows_plane(viewer, layer, (0,)) and not L.shows_plane(viewer, layer, (3,))
    viewer.dims.ndisplay = 3
    assert L.shows_plane(viewer, layer, (0,))
