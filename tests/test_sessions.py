"""A session survives a crash: saved as it changes, restored in a new napari with the same images."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.sessions import SessionContent, read_session, write_session
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.samples import cells
from test_widget import draw_labels_reference, run_and_wait

CRASHING_NAPARI = """
import json, sys, time
import numpy as np
import napari
from qtpy.QtWidgets import QApplication
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.samples import cells

def wait(condition, timeout=600):
    end = time.monotonic() + timeout
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() > end:
            sys.exit("timed out")

viewer = napari.Viewer(show=False)
viewer.open_sample("napari-sansa", "cells")
_, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
widget.image_size.setValue(256)
widget.device.setCurrentText("cpu")
widget.prompt_image.setCurrentText("cells 0")
layer = widget.add_prompt_layer("labels")
truth = cells(6)[0][1]
layer.data = np.where(np.isin(truth, [1, 2]), truth, 0).astype(np.uint8)  # the user's references
widget.run()
wait(lambda: widget.worker is None)
result = viewer.layers["cells 2 [SANSA]"]
result.brush_size = 9
result.paint((40, 60), 3)  # a correction, with napari's brush
for key in widget.review_order()[:2]:
    widget.accept(key)
wait(lambda: widget.sessions_panel.idle)
images = [layer for layer in viewer.layers if isinstance(layer, napari.layers.Image)]
names = {layer.metadata["sansa_id"]: layer.name for layer in images}
results = {name: viewer.layers[name + " [SANSA]"].data for name in names.values() if name + " [SANSA]" in viewer.layers}
np.savez(sys.argv[1], **results)
print(json.dumps(sorted([names[k.image_id], list(k.plane)] for k in widget.locked)), flush=True)
while True:  # napari goes on until it is killed
    QApplication.processEvents()
    time.sleep(0.05)
"""


def test_a_killed_napari_is_restored_with_its_references_corrections_and_acceptances(
    open_widget, checkpoints, tmp_path
):
    sessions = tmp_path / "sessions"  # NAPARI_SANSA_SESSION_DIR (conftest), in both napari
    assert os.environ["NAPARI_SANSA_SESSION_DIR"] == str(sessions)
    env = {
        **os.environ,
        "NAPARI_SANSA_SAM2_CHECKPOINT": str(checkpoints[0]),
        "NAPARI_SANSA_ADAPTER_CHECKPOINT": str(checkpoints[1]),
        "NAPARI_SANSA_CONFIG_DIR": str(tmp_path / "config"),
        "NAPARI_CONFIG": str(tmp_path / "napari_settings.yaml"),
    }
    expected_file = tmp_path / "expected.npz"
    napari = subprocess.Popen(
        [sys.executable, "-c", CRASHING_NAPARI, str(expected_file)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = napari.stdout.readline()  # once everything is saved
    finally:
        napari.send_signal(signal.SIGKILL)
        napari.wait(timeout=60)
    assert line, "the napari subprocess ended before saving"
    accepted = {(name, tuple(plane)) for name, plane in json.loads(line)}
    assert ("cells 2", ()) in accepted and len(accepted) >= 2  # accepted, and painted on
    assert [p.parent for p in sessions.glob("*/session.json")] != []

    viewer, widget = open_widget()  # a new napari with the same images
    assert widget.sessions_panel.offered is not None and widget.sections.section("Session").expanded
    restored = widget.restore_session()
    assert restored.references == 1 and restored.folder.parent == sessions
    truth = cells(6)[0][1]
    np.testing.assert_array_equal(
        viewer.layers["cells 0 prompts"].data, np.where(np.isin(truth, [1, 2]), truth, 0)
    )
    with np.load(expected_file) as expected:
        expected_names = expected.files
        assert sorted(restored.results) == sorted(expected_names)
        for name in expected.files:  # the painted pixels included
            np.testing.assert_array_equal(viewer.layers[f"{name} [SANSA]"].data, expected[name])
        assert (expected["cells 2"] == 3).any()
    names = {layer.metadata.get("sansa_id"): layer.name for layer in viewer.layers}
    assert {(names[k.image_id], k.plane) for k in widget.locked} == accepted
    assert set(restored.accepted) == widget.locked
    assert len(widget.plan().references) == 1  # ready to run again
    assert len(widget.review_order()) == len(expected_names)  # the review list, with its scores
    unlocked = next(k for k in widget.review_order() if k not in widget.locked)
    viewer.layers[names[unlocked.image_id] + " [SANSA]"].paint((10, 10), 1)  # a restored result
    assert unlocked in widget.locked  # is locked by painting, as a run's is


def test_a_session_is_saved_as_it_changes_and_a_damaged_one_is_refused_in_one_line(
    open_widget, qtbot, tmp_path
):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    widget.sessions_panel.changed()  # the layer's pixels were set in place, without an event
    run_and_wait(widget, qtbot)
    qtbot.waitUntil(lambda: widget.sessions_panel.idle, timeout=30_000)
    folder = widget.sessions_panel.folder
    assert folder.parent == tmp_path / "sessions"
    saved = read_session(folder)
    assert len(saved.results) == 5 and saved.references is not None

    second, widget2 = open_widget()  # another napari, same images: offered
    assert widget2.sessions_panel.offered == folder
    for npz in (folder / "results").glob("*.npz"):
        npz.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(SansaError) as error:
        widget2.restore_session()
    assert "damaged" in str(error.value) and "\n" not in str(error.value)
    (folder / "session.json").write_text('{"format": "napari-sansa session", "format_')
    widget2.sessions_panel.refresh_list()
    assert "damaged" in widget2.sessions_panel.list.item(0).text()
    with pytest.raises(SansaError, match="not a napari-sansa session") as error:
        widget2.restore_session(folder)
    assert "\n" not in str(error.value)
    widget2.sessions_panel.delete(folder)
    qtbot.waitUntil(lambda: not folder.exists(), timeout=10_000)


def test_a_save_cut_short_leaves_the_previous_session_readable(tmp_path, monkeypatch):
    images = {"a": (4, 5), "b": (4, 5)}
    first = SessionContent(images, {"a": np.ones((4, 5), np.uint8)}, accepted=[("a", ())])
    write_session(tmp_path, first)
    second = SessionContent(images, {"a": np.full((4, 5), 2, np.uint8), "b": np.full((4, 5), 3, np.uint8)})

    calls, real = [], np.savez_compressed

    def cut_short(file, **arrays):  # the second array's write dies half way
        calls.append(1)
        if len(calls) == 2:
            file.write(b"PK\x03\x04")
            raise OSError(28, "No space left on device")
        real(file, **arrays)

    monkeypatch.setattr(np, "savez_compressed", cut_short)
    with pytest.raises(SansaError, match="No space left"):
        write_session(tmp_path, second)
    saved = read_session(tmp_path)
    assert list(saved.results) == ["a"] and (saved.results["a"] == 1).all()
    assert saved.accepted == [("a", ())]
    monkeypatch.undo()
    write_session(tmp_path, second)  # the next save cleans up what the cut-short one left
    saved = read_session(tmp_path)
    assert (saved.results["b"] == 3).all() and len(list((tmp_path / "results").iterdir())) == 2


def test_sessions_live_in_the_user_data_folder_unless_the_environment_names_one(monkeypatch, tmp_path):
    from napari_sansa.plugin.core.saved_sessions import new_session_folder, sessions_root

    assert new_session_folder().parent == tmp_path / "sessions"  # NAPARI_SANSA_SESSION_DIR (conftest)
    monkeypatch.delenv("NAPARI_SANSA_SESSION_DIR")
    assert sessions_root().parts[-2:] == ("napari-sansa", "sessions")


def test_restored_clicks_boxes_and_masks_give_the_references_that_were_saved(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget, "cells 0")
    widget.prompt_image.setCurrentText("cells 1")
    clicks = widget.add_prompt_layer("points")
    clicks.add([[40, 50], [60, 70]])
    L.toggle_point_sign(clicks)  # the next click is negative
    clicks.add([[5, 5]])
    boxes = widget.add_prompt_layer("shapes")
    boxes.add_rectangles(np.array([[10, 20], [90, 120]]))
    qtbot.waitUntil(lambda: widget.sessions_panel.idle, timeout=30_000)
    before = widget.plan()

    _, restored_widget = open_widget()
    restored = restored_widget.restore_session()
    after = restored_widget.plan()
    assert restored.references == 2 and restored.results == [] and restored.accepted == []
    assert [k.plane for k in after.reference_keys] == [k.plane for k in before.reference_keys]
    for old, new in zip(before.references, after.references):
        assert sorted(old.prompts) == sorted(new.prompts)
        for class_id in old.prompts:
            kinds = lambda prompts: sorted(type(p).__name__ for p in prompts)  # noqa: E731
            assert kinds(old.prompts[class_id]) == kinds(new.prompts[class_id])
