"""The widget's "How good is it?" section, driven as a user would: Check references, ground truth."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt

from napari_sansa.plugin.panels.evaluation import BY_NAME, NO_TRUTH
from napari_sansa.samples import cells


def mask_reference(widget, index):
    widget.prompt_image.setCurrentText(f"cells {index}")
    layer = widget.add_prompt_layer("labels")
    layer.data[...] = cells(6)[index][1]
    layer.refresh()
    return layer


def check_and_wait(panel, qtbot):
    qtbot.mouseClick(panel.check_button, Qt.LeftButton)
    assert panel.worker is not None
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120_000)


def test_check_references_lists_each_mask_reference_lowest_iou_first(open_widget, qtbot):
    viewer, widget = open_widget()
    for i in range(3):
        mask_reference(widget, i)
    panel = widget.evaluation_panel
    check_and_wait(panel, qtbot)
    results = panel.results
    assert sorted(results["image"].unique()) == ["cells 0", "cells 1", "cells 2"]  # one row set each
    assert len(results) == 6  # classes 1 and 2 of each
    assert results["iou"].tolist() == sorted(results["iou"].tolist())
    assert panel.table.rowCount() == 6 and not panel.table.isHidden()
    assert panel.table.item(0, 2).text() == f"{results['iou'].iloc[0]:.2f}"
    assert panel.status.text().startswith("3 reference(s) checked; lowest IoU")
    assert panel.progress.isHidden() and panel.check_button.isEnabled()
    assert widget.model is not None  # the model loaded for the check is the next run's
    panel.table.setCurrentCell(0, 0)  # a row shows its reference's image
    assert viewer.layers.selection.active.name == results["image"].iloc[0]


def test_check_references_can_be_cancelled_and_keeps_the_rows_so_far(open_widget, qtbot):
    _, widget = open_widget()
    for i in range(3):
        mask_reference(widget, i)
    panel = widget.evaluation_panel
    worker = panel.check()
    worker.yielded.connect(lambda e: panel.cancel() if type(e).__name__ == "HeldOut" else None)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120_000)
    assert 1 <= panel.results["image"].nunique() < 3
    assert panel.status.text().endswith("(cancelled).")


def test_check_references_needs_a_mask_and_another_reference(open_widget, qtbot, errors):
    _, widget = open_widget()
    mask_reference(widget, 0)
    assert widget.evaluation_panel.check() is None
    assert "needs a reference with a mask and at least one other" in errors[-1]


def rows_text(widget) -> str:
    return "\n".join(widget.review.item(i).text() for i in range(widget.review.count()))


def test_ground_truth_by_name_adds_iou_to_the_review_list(open_widget, qtbot):
    viewer, widget = open_widget()
    mask_reference(widget, 0)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    result = viewer.layers["cells 1 [SANSA]"].data
    viewer.add_labels(result.copy(), name="cells 1 truth")  # a perfect truth
    other = np.zeros_like(result)
    other[:50, :50] = 1
    viewer.add_labels(other, name="cells 2_mask")
    panel = widget.evaluation_panel
    assert [panel.truth.itemText(i) for i in range(panel.truth.count())][:2] == [NO_TRUTH, BY_NAME]
    panel.truth.setCurrentText(BY_NAME)  # the IoUs are measured in a worker, then listed
    qtbot.waitUntil(lambda: "IoU" in rows_text(widget) and not panel.truth_job.running(), timeout=30_000)
    rows = [widget.review.item(i).text() for i in range(widget.review.count())]
    assert any("cells 1" in row and row.endswith("IoU 1.00") for row in rows)
    assert any("cells 2" in row and "IoU" in row for row in rows)
    assert not any("cells 3" in row and "IoU" in row for row in rows)  # no truth: no IoU
    qtbot.waitUntil(lambda: "cells 1 truth" in widget.references_panel.layer_list.rows, timeout=5_000)
    assert widget.references_panel.layer_list.choice("cells 1 truth") == "not a reference"  # a truth is none
    panel.truth.setCurrentText(NO_TRUTH)
    assert not any("IoU" in widget.review.item(i).text() for i in range(widget.review.count()))


def test_a_chosen_truth_layer_scores_the_image_it_fits(open_widget, qtbot):
    viewer, widget = open_widget()
    mask_reference(widget, 0)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    viewer.add_labels(np.zeros((256, 320), np.uint8), name="empty truth")
    widget.evaluation_panel.truth.setCurrentText("empty truth")
    qtbot.waitUntil(
        lambda: "IoU" in rows_text(widget) and not widget.evaluation_panel.truth_job.running(), timeout=30_000
    )
    rows = [widget.review.item(i).text() for i in range(widget.review.count())]
    predicted = [i for i in range(1, 6) if viewer.layers[f"cells {i} [SANSA]"].data.any()]
    assert sum(row.endswith("IoU 0.00") for row in rows) == len(predicted)  # all predicted is false
