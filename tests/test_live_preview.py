"""Live preview while drawing, and the threshold slider without re-running."""

from __future__ import annotations

import threading

import numpy as np

from napari_sansa.engine.runs.results import labels_from_logits
from napari_sansa.plugin import preview as preview_module
from napari_sansa.plugin.viewer.reference_layers import annotation_layers
from test_widget import draw_labels_reference, run_and_wait

PREVIEW = "cells 5 [SANSA preview]"  # the top visible target of the sample


def _stroke(layer, center, label=1):
    """A paint stroke as napari makes one (it emits the Labels `paint` event)."""
    layer.paint(center, label)


def _wait_written(widget, qtbot, count):
    qtbot.waitUntil(
        lambda: widget.preview.written >= count and widget.preview.worker is None, timeout=120_000
    )
    assert widget.preview.written == count


def _reference_mask(widget):
    return widget.preview.last.request.references[0].prompts[1][0].mask


def test_strokes_on_a_reference_preview_the_looked_at_target_without_run(
    open_widget, qtbot, encoder_calls, monkeypatch
):
    viewer, widget = open_widget()
    widget.prompt_image.setCurrentText("cells 0")
    prompts = widget.add_prompt_layer("labels")
    prompts.brush_size = 20
    widget.live_preview.setChecked(True)
    _stroke(prompts, (60, 60))
    _wait_written(widget, qtbot, 1)
    layer = viewer.layers[PREVIEW]
    assert layer.data.shape == (256, 320)
    assert widget.worker is None and not [lyr for lyr in viewer.layers if lyr.name.endswith("[SANSA]")]
    assert layer not in annotation_layers(viewer)  # a preview is never a reference
    assert viewer.layers.selection.active.name == prompts.name  # drawing goes on in the same layer

    # a second stroke updates it, with no encoder pass: the target's features are cached
    calls = encoder_calls(widget.model)
    _stroke(prompts, (150, 200))
    _wait_written(widget, qtbot, 2)
    assert _reference_mask(widget)[150, 200]
    assert not calls and widget.preview.last.encoder_passes == 0

    # strokes while a prediction is in flight make it stale; the newest supersedes one still waiting
    gate, asked = threading.Event(), []
    predict = preview_module.predict_preview

    def held(get_model, request):
        asked.append(request.generation)
        if len(asked) == 1:
            gate.wait(60)
        return predict(get_model, request)

    monkeypatch.setattr(preview_module, "predict_preview", held)
    _stroke(prompts, (100, 250))
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=10_000)
    _stroke(prompts, (200, 250))
    qtbot.wait(2 * preview_module.DEBOUNCE_MS)
    assert "Live preview waits for it" in widget.controls.busy.text()
    _stroke(prompts, (200, 60))
    qtbot.wait(2 * preview_module.DEBOUNCE_MS)
    assert len(asked) == 1  # one prediction at a time, and only the newest waits
    gate.set()
    _wait_written(widget, qtbot, 3)  # the stale one was dropped, never shown
    assert len(asked) == 2 and asked[1] == widget.preview.generation
    assert _reference_mask(widget)[200, 60]

    # a Run's result replaces the preview
    run_and_wait(widget, qtbot)
    assert PREVIEW not in [lyr.name for lyr in viewer.layers]


def test_the_threshold_relabels_the_preview_and_the_results_without_the_model(
    open_widget, qtbot, monkeypatch
):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    run_and_wait(widget, qtbot)
    widget.live_preview.setChecked(True)
    _wait_written(widget, qtbot, 1)

    def no_model(*args, **kwargs):
        raise AssertionError("the threshold ran the model")

    monkeypatch.setattr(type(widget.model), "propagate", no_model)
    monkeypatch.setattr(widget.model.runtime, "features_many", no_model)
    result, preview = viewer.layers["cells 3 [SANSA]"], viewer.layers[PREVIEW]
    kept = widget.runner.results.logits
    shown = {}
    for value in (5, 95):
        widget.controls.threshold.setValue(value)
        threshold = widget.controls.threshold_logit
        key = next(k for k, _ in kept.items() if k.image_id == result.metadata["sansa_result_of"])
        expected = labels_from_logits(kept.get(key), threshold)
        qtbot.waitUntil(lambda: not widget.relabelling.pending, timeout=10_000)  # debounced, in a worker
        assert np.array_equal(result.data, expected)
        shown[value] = (result.data.copy(), preview.data.copy())
        assert np.array_equal(preview.data, labels_from_logits(widget.preview.last.logits, threshold))
    assert (shown[5][0] > 0).sum() > (shown[95][0] > 0).sum()  # a lower threshold labels more
    assert (shown[5][1] > 0).sum() > (shown[95][1] > 0).sum()


def test_labels_from_logits_make_the_labels_the_model_makes(model, samples):
    import napari_sansa as ns

    (image, labels), (target, _) = samples[0], samples[1]
    reference = ns.Reference(image, {1: ns.Mask(labels == 1), 2: ns.Mask(labels == 2)})
    prediction = model.segment([reference], [target])[0]
    again = labels_from_logits(prediction.logits, model.config.threshold, prediction.labels.dtype)
    assert np.array_equal(again, prediction.labels)


def test_kept_logits_stay_within_their_budget_oldest_dropped_first():
    from napari_sansa.plugin.core.logits import KeptLogits

    one = {1: np.zeros((64, 64), np.float32), 2: np.ones((64, 64), np.float32)}  # 16 KiB in float16
    kept = KeptLogits(budget=40 * 1024)
    for key in "abc":
        kept.put(key, one)
    assert [k for k, _ in kept.items()] == ["b", "c"] and kept.nbytes <= kept.budget
    assert kept.get("c")[2].dtype == np.float16


def test_on_a_stack_the_plane_on_screen_is_previewed(open_widget, qtbot):
    viewer, widget = open_widget("drifting_cells")
    prompts = widget.add_prompt_layer("labels")
    prompts.brush_size = 30
    viewer.dims.set_current_step(0, 4)
    widget.live_preview.setChecked(True)
    _stroke(prompts, (4, 120, 160))  # plane 4 is annotated: a reference, not a target
    qtbot.wait(3 * preview_module.DEBOUNCE_MS)
    assert widget.preview.written == 0
    viewer.dims.set_current_step(0, 7)  # looking at another plane previews it
    _wait_written(widget, qtbot, 1)
    assert widget.preview.last.request.key.plane == (7,)
    layer = viewer.layers["drifting cells [SANSA preview]"]
    assert layer.data.shape == viewer.layers["drifting cells"].data.shape
    assert not layer.data[:7].any() and not layer.data[8:].any()  # only the plane on screen


def test_a_run_during_which_the_slider_moves_ends_with_every_result_at_its_final_value(open_widget, qtbot):
    viewer, widget = open_widget()
    draw_labels_reference(widget)
    assert widget.run() is not None
    widget.controls.threshold.setValue(30)  # before the run labels anything
    qtbot.waitUntil(lambda: len(widget.review_order()) > 0, timeout=120_000)
    widget.controls.threshold.setValue(70)  # while it runs (or just after)
    qtbot.waitUntil(lambda: widget.worker is None and not widget.relabelling.pending, timeout=120_000)
    threshold = widget.controls.threshold_logit
    kept = dict(widget.runner.results.logits.items())
    assert len(kept) == len(widget.review_order()) == 5
    for key, logits in kept.items():
        layer = next(lyr for lyr in viewer.layers if lyr.metadata.get("sansa_result_of") == key.image_id)
        assert np.array_equal(layer.data, labels_from_logits(logits, threshold)), layer.name
    assert widget.controls.threshold_note.text() == ""  # nothing keeps another threshold
