"""The widget's Adapt to these images… section: trains in a worker, then runs with the adapted model;
a Run asked meanwhile waits for it, and Cancel stops what the status line shows."""

from __future__ import annotations

from napari_sansa.plugin.panels.run_controls import RUN_KEY
from napari_sansa.samples import cells
from test_dock import press


def _annotate(widget, size):
    widget.image_size.setValue(size)  # a model of its own (no other test loads it): adapting changes it
    truth = cells(6)
    for index in range(4):
        widget.prompt_image.setCurrentText(f"cells {index}")
        layer = widget.add_prompt_layer("labels")
        layer.data[truth[index][1] == 1] = 1
        layer.refresh()


def test_a_run_asked_during_adapt_waits_and_runs_with_the_adapted_model(open_widget, qtbot, tmp_path, errors):
    viewer, widget = open_widget()
    _annotate(widget, 224)
    panel = widget.adapt_panel
    worker = panel.start(steps=4)
    assert worker is not None
    order = []
    worker.finished.connect(lambda: order.append("adapt"))
    run = widget.run()  # asked during Adapt: it waits, the status line says for what
    assert run is not None and widget.worker is run
    run.started.connect(lambda: order.append("run"))
    assert widget.controls.busy.text() == "Adapt is going; Run waits for it (Cancel drops them)."
    assert not widget.controls.run_button.isEnabled()
    press(viewer, RUN_KEY)  # the shortcut obeys the same rule: one run asked at a time
    assert errors == ["Run is already waiting."]
    qtbot.waitUntil(lambda: panel.worker is None and widget.worker is None, timeout=300_000)
    assert order == ["adapt", "run"]  # the run started after Adapt ended
    assert panel.report is not None and panel.report.steps == 4
    assert len(panel.plot.losses) == 4 and panel.plot.ious  # the live plot heard of every step
    assert panel.save_button.isEnabled()
    assert "adapted" in widget.sections.section("Model").header.text()  # the model title says so
    adapted = widget.model
    assert adapted.adaptation is panel.report  # the run used the adapted model
    assert viewer.layers["cells 5 [SANSA]"].data.any()
    assert widget.controls.busy.text() == "" and widget.controls.run_button.isEnabled()
    panel.save(tmp_path / "mine.pth")
    assert (tmp_path / "mine.pth").is_file()
    assert "saved" in panel.status.text()


def test_cancel_stops_adapt_and_drops_the_run_waiting_for_it(open_widget, qtbot):
    viewer, widget = open_widget()
    _annotate(widget, 192)
    panel = widget.adapt_panel
    panel.start(steps=10_000)
    assert widget.run() is not None
    qtbot.waitUntil(lambda: len(panel.plot.losses) > 0, timeout=300_000)  # a step is done
    assert "Run waits" in widget.controls.busy.text()
    widget.controls.cancel_button.click()  # Cancel: what the status line shows
    qtbot.waitUntil(lambda: panel.worker is None and widget.worker is None, timeout=300_000)
    assert panel.report.steps < 10_000  # Adapt stopped, keeping its best state
    assert "cancelled before it began" in widget.status.text()
    assert not [layer for layer in viewer.layers if layer.name.endswith("[SANSA]")]
    assert widget.controls.busy.text() == ""
