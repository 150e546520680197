"""Scores against a ground truth, checked against values counted by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk

import napari_sansa as ns
from napari_sansa.engine.errors import SansaError


def square(image, top, left, side, value):
    image[top : top + side, left : left + side] = value


def test_exact_and_shifted_squares_give_hand_counted_iou_and_dice():
    truth, predicted = np.zeros((60, 60), np.uint8), np.zeros((60, 60), np.uint8)
    square(truth, 5, 5, 10, 1)
    square(predicted, 5, 5, 10, 1)  # class 1: exact
    square(truth, 30, 30, 10, 2)
    square(predicted, 30, 35, 10, 2)  # class 2: shifted by half: 50 shared of 150 pixels
    table = ns.score_classes(predicted, truth)
    assert list(table.columns) == ["class", "iou", "dice", "true_pixels", "predicted_pixels"]
    assert table["class"].tolist() == [1, 2]
    assert table["iou"].tolist() == pytest.approx([1.0, 50 / 150])
    assert table["dice"].tolist() == pytest.approx([1.0, 100 / 200])
    assert table["true_pixels"].tolist() == [100, 100]
    assert table["predicted_pixels"].tolist() == [100, 100]


def test_shifted_discs_score_their_overlap():
    truth, predicted = np.zeros((80, 80), np.int32), np.zeros((80, 80), np.int32)
    truth[disk((40, 35), 15)] = 3
    predicted[disk((40, 45), 15)] = 3
    a, b = truth == 3, predicted == 3
    row = ns.score_classes(predicted, truth).iloc[0]
    assert row["iou"] == pytest.approx((a & b).sum() / (a | b).sum())
    assert row["dice"] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert 0.3 < row["iou"] < 0.6


def test_a_missed_class_and_a_false_positive_score_zero():
    truth, predicted = np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)
    square(truth, 0, 0, 5, 2)  # class 2 missed
    square(predicted, 10, 10, 4, 3)  # class 3 predicted where there is none
    table = ns.score_classes(predicted, truth).set_index("class")
    assert table.loc[2].tolist() == [0.0, 0.0, 25, 0]
    assert table.loc[3].tolist() == [0.0, 0.0, 0, 16]
    asked = ns.score_classes(predicted, truth, class_ids=[1, 2]).set_index("class")
    assert asked.index.tolist() == [1, 2]  # class 1 is in neither image: nothing to score
    assert np.isnan(asked.loc[1, "iou"]) and asked.loc[1, "true_pixels"] == 0


def test_a_stack_scores_as_a_volume_and_plane_by_plane():
    truth, predicted = np.zeros((2, 20, 20), np.uint8), np.zeros((2, 20, 20), np.uint8)
    square(truth[0], 0, 0, 10, 1)
    square(predicted[0], 0, 0, 10, 1)  # plane 0 right
    square(truth[1], 0, 0, 10, 1)  # plane 1 missed
    whole = ns.score_classes(predicted, truth)
    assert "plane" not in whole.columns
    assert whole["iou"].tolist() == [0.5]
    planes = ns.score_classes(predicted, truth, per_plane=True)
    assert list(planes.columns)[0] == "plane"
    assert planes[["plane", "iou"]].values.tolist() == [[0, 1.0], [1, 0.0]]


def objects_scene():
    """Six true objects; the prediction finds one exactly, one eroded, one shifted, misses one,
    merges two into one, and adds a spurious one."""
    truth, predicted = np.zeros((100, 100), np.int32), np.zeros((100, 100), np.int32)
    square(truth, 5, 5, 10, 1)
    square(predicted, 5, 5, 10, 7)  # exact: IoU 1
    square(truth, 5, 30, 10, 2)
    square(predicted, 6, 31, 8, 3)  # eroded by one pixel: 64 / 100
    square(truth, 5, 60, 10, 3)  # missed
    square(truth, 40, 5, 10, 4)
    square(truth, 40, 15, 10, 5)
    predicted[40:50, 5:25] = 9  # 4 and 5 merged: 100 / 200 with each
    square(truth, 40, 60, 10, 6)
    square(predicted, 40, 61, 10, 1)  # shifted by one column: 90 / 110
    square(predicted, 80, 80, 10, 5)  # spurious
    return predicted, truth


def test_objects_found_eroded_missed_merged_and_spurious_at_each_threshold():
    predicted, truth = objects_scene()
    table = ns.score_objects(predicted, truth).set_index("threshold")
    columns = "threshold true_positives false_positives false_negatives precision recall f1"
    assert list(table.reset_index().columns) == [*columns.split(), "mean_matched_iou"]
    # 0.5: exact, eroded, shifted and one of the merged pair (exactly 0.5) match
    assert table.loc[0.5, ["true_positives", "false_positives", "false_negatives"]].tolist() == [4, 1, 2]
    assert table.loc[0.5, "precision"] == pytest.approx(4 / 5)
    assert table.loc[0.5, "recall"] == pytest.approx(4 / 6)
    assert table.loc[0.5, "f1"] == pytest.approx(8 / 11)
    assert table.loc[0.5, "mean_matched_iou"] == pytest.approx((1 + 0.64 + 90 / 110 + 0.5) / 4)
    # 0.75: the exact and the shifted one
    assert table.loc[0.75, ["true_positives", "false_positives", "false_negatives"]].tolist() == [2, 3, 4]
    assert table.loc[0.75, "mean_matched_iou"] == pytest.approx((1 + 90 / 110) / 2)
    # 0.9: the exact one only
    assert table.loc[0.9, ["true_positives", "false_positives", "false_negatives"]].tolist() == [1, 4, 5]
    assert table.loc[0.9, "f1"] == pytest.approx(2 / 11)


def test_the_matching_is_one_to_one_and_finds_the_most_matches():
    # at IoU 0.25 the best single pairs (0.6 and 0.43) would leave two objects unmatched;
    # the matching takes four pairs, as stardist and cellpose count
    truth = np.array([[1, 1, 1, 1, 1, 1, 1, 0, 0, 3, 3, 4, 5, 5, 5, 5]])
    predicted = np.array([[1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5]])
    row = ns.score_objects(predicted, truth, thresholds=[0.25]).iloc[0]
    assert row["true_positives"] == 4
    assert row["mean_matched_iou"] == pytest.approx((3 / 7 + 2 / 7 + 1 / 4 + 1 / 4) / 4)


def test_nothing_to_count_is_nan_not_a_crash():
    empty = np.zeros((10, 10), np.int32)
    row = ns.score_objects(empty, empty, thresholds=[0.5]).iloc[0]
    assert row["true_positives"] == row["false_positives"] == row["false_negatives"] == 0
    assert np.isnan(row["precision"]) and np.isnan(row["f1"])
    assert ns.score_classes(empty, empty).empty


def test_stack_objects_match_in_3d_or_per_plane():
    truth = np.zeros((2, 20, 20), np.int32)
    truth[:, 2:12, 2:12] = 1  # one object through both planes
    predicted = truth.copy()
    predicted[1] = 0
    whole = ns.score_objects(predicted, truth, thresholds=[0.5])
    assert whole["true_positives"].tolist() == [1]  # half of the volume: IoU 0.5
    planes = ns.score_objects(predicted, truth, thresholds=[0.5], per_plane=True)
    assert planes[["plane", "true_positives", "false_negatives"]].values.tolist() == [[0, 1, 0], [1, 0, 1]]


def test_a_thousand_objects_are_matched():
    rng = np.random.default_rng(0)
    truth = np.zeros((400, 1000), np.int32)
    labels = rng.permutation(np.arange(1, 1001))
    for i, label in enumerate(labels):
        r, c = divmod(i, 50)
        truth[r * 20 + 2 : r * 20 + 14, c * 20 + 2 : c * 20 + 14] = label
    predicted = np.zeros_like(truth)
    predicted[:, 1:] = truth[:, :-1]  # every object shifted by a column: 132 / 156
    relabel = np.r_[0, rng.permutation(np.arange(1, 1001)) + 5000]
    predicted = relabel[predicted]
    table = ns.score_objects(predicted, truth).set_index("threshold")
    assert table.loc[0.5, "true_positives"] == 1000
    assert table.loc[0.5, "mean_matched_iou"] == pytest.approx(132 / 156)
    assert table.loc[0.9, "false_negatives"] == 1000


def test_any_integer_labels_count_the_same():
    predicted, truth = objects_scene()
    expected = ns.score_objects(predicted, truth)
    for dtype, offset in ((np.uint64, 2**40), (np.int64, -(2**40)), (np.uint16, 60000)):
        shifted = [
            np.where(a > 0, a.astype(dtype) + dtype(offset), 0).astype(dtype) for a in (predicted, truth)
        ]
        pd.testing.assert_frame_equal(ns.score_objects(*shifted), expected)


def test_mismatched_shapes_say_so():
    with pytest.raises(SansaError, match="same shape"):
        ns.score_classes(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(SansaError, match="integer"):
        ns.score_objects(np.full((4, 4), 0.5), np.zeros((4, 4), int))
    assert isinstance(ns.score_classes(np.ones((4, 4), bool), np.ones((4, 4), bool)), pd.DataFrame)
