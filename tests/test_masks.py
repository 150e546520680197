"""Label images as classes: semantic masks keep their values, instance masks become one class."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sansa import SansaError, classes_from_mask
from napari_sansa.engine.inputs.masks import AUTO_MAX_CLASSES


def instance_mask(count: int, shape=(80, 100)) -> np.ndarray:
    """``count`` small square objects, each with its own id."""
    mask = np.zeros(shape, np.uint16)
    for i in range(count):
        r, c = divmod(i, 10)
        mask[r * 8 : r * 8 + 5, c * 10 : c * 10 + 6] = i + 1
    return mask


def test_an_instance_mask_is_one_class_in_auto_mode():
    mask = instance_mask(50)
    decided = classes_from_mask(mask, source="cells.tif")
    assert decided.mode == "one" and list(decided.classes) == [1]
    np.testing.assert_array_equal(decided.classes[1], mask != 0)
    assert "cells.tif" in decided.message and "50 object id" in decided.message
    assert "ONE class" in decided.message and "--mask-classes each" in decided.message


def test_each_keeps_every_value_as_its_own_class():
    mask = instance_mask(50)
    decided = classes_from_mask(mask, "each")
    assert decided.mode == "each" and sorted(decided.classes) == list(range(1, 51))
    np.testing.assert_array_equal(decided.classes[17], mask == 17)


def test_a_semantic_mask_keeps_its_classes_and_says_so():
    mask = np.zeros((30, 30), np.uint8)
    mask[2:10, 2:10], mask[15:25, 15:25] = 1, 2
    decided = classes_from_mask(mask)
    assert decided.mode == "each" and sorted(decided.classes) == [1, 2]
    assert "2 class(es)" in decided.message and "--mask-classes one" in decided.message
    assert list(classes_from_mask(mask, "one").classes) == [1]


def test_auto_switches_just_past_its_limit():
    assert classes_from_mask(instance_mask(AUTO_MAX_CLASSES)).mode == "each"
    assert classes_from_mask(instance_mask(AUTO_MAX_CLASSES + 1)).mode == "one"


def test_a_binary_0_255_mask_is_class_1():
    mask = np.zeros((20, 20), np.uint8)
    mask[5:9, 5:9] = 255
    for mode in ("auto", "each", "one"):
        assert list(classes_from_mask(mask, mode).classes) == [1]


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.dstack([np.eye(8), np.zeros((8, 8)), np.zeros((8, 8))]), "colour image"),
        (np.full((8, 8), 0.5), "fractional"),
        (-np.eye(8, dtype=np.int16), "negative"),
        (np.zeros((8, 8), np.uint8), "empty"),
        (np.ones((2, 8, 8), np.uint8), "2D label image"),
        (np.eye(8), "unknown"),
    ],
    ids=["colour", "fractional", "negative", "empty", "3d", "bad-mode"],
)
def test_bad_masks_are_refused_with_a_reason(mask, message):
    mode = "several" if message == "unknown" else "auto"
    with pytest.raises(SansaError, match=message):
        classes_from_mask(mask, mode, source="m.png")
