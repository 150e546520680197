"""The widget's Adapt to these images… section: trains in a worker, then runs with the adapted model."""

from __future__ import annotations

from napari_sansa.samples import cells


def test_adapt_then_run_with_the_adapted_model(open_widget, qtbot, tmp_path):
    viewer, widget = open_widget()
    widget.image_size.setValue(224)  # a model of its own (no other test loads 224): adapting changes it
    truth = cells(6)
    for index in range(4):
        widget.prompt_image.setCurrentText(f"cells {index}")
        layer = widget.add_prompt_layer("labels")
        layer.data[truth[index][1] == 1] = 1
        layer.refresh()
    panel = widget.adapt_panel
    worker = panel.start(steps=4)
    assert worker is not None
    qtbot.waitUntil(lambda: panel.worker is None, timeout=300_000)
    assert panel.report is not None and panel.report.steps == 4
    assert len(panel.plot.losses) == 4 and panel.plot.ious  # the live plot heard of every step
    assert panel.save_button.isEnabled()
    assert "adapted" in widget.sections.section("Model").header.text()  # the model title says so
    adapted = widget.model
    assert adapted.adaptation is panel.report

    worker = widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert widget.model is adapted  # the run used the adapted model
    panel.save(tmp_path / "mine.pth")
    assert (tmp_path / "mine.pth").is_file()
    assert "saved" in panel.status.text()
