"""Objects of labels too large for memory, block by block, are the objects of the whole labels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sansa.engine.objects.split import split_instances
from napari_sansa.engine.objects.streamed import stream_objects


def whole_components(labels: np.ndarray, min_size: int) -> list[tuple[int, frozenset]]:
    """(class, pixels) of every object, found on the whole image at once."""
    found = []
    for c in np.unique(labels[labels > 0]):
        pieces = split_instances(labels == c, method="components", min_size=min_size)
        for k in range(1, int(pieces.max()) + 1):
            found.append((int(c), frozenset(np.flatnonzero(pieces == k).tolist())))
    return found


@pytest.mark.parametrize("block", [7, 16, 50])
def test_objects_block_by_block_are_those_of_the_whole_image(block):
    rng = np.random.default_rng(block)
    labels = rng.choice([0, 0, 0, 1, 2], size=(61, 83)).astype(np.uint8)  # many objects on every border
    labels[10:40, 5:70] = 1  # one object across many blocks
    out = np.full(labels.shape, -1, np.int32)
    table = stream_objects(labels, out, min_size=3, block=block, class_names={1: "cell"})
    expected = whole_components(labels, min_size=3)
    found = [
        (int(table["class"][k - 1]), frozenset(np.flatnonzero(out == k).tolist())) for k in table["label"]
    ]
    assert sorted(found, key=str) == sorted(expected, key=str)
    assert out.min() == 0 and out.max() == len(table)  # every pixel relabelled, ids 1..n
    assert list(table["class"]) == sorted(table["class"])  # class by class
    biggest = table.loc[table["area"].idxmax()]
    assert biggest["class_name"] == "cell" and biggest["area"] == (out == biggest["label"]).sum()
    rows, cols = np.nonzero(out == biggest["label"])
    assert biggest["centroid_row"] == pytest.approx(rows.mean())
    assert (biggest["bbox_row0"], biggest["bbox_col1"]) == (rows.min(), cols.max() + 1)


def test_no_objects_give_an_empty_table():
    out = np.zeros((20, 30), np.int32)
    table = stream_objects(np.zeros((20, 30), np.uint8), out, block=8)
    assert len(table) == 0 and "area" in table and not out.any()
