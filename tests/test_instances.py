"""Objects: touching objects split apart, measured, and outlined by SAM2 from cached features."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, ellipse

import napari_sansa as ns
from napari_sansa.engine.errors import SansaError


def scene(shapes, shape=(200, 240)):
    """Truth labels: ('disc', (row, col), radius) or ('ellipse', (row, col), r_radius, c_radius, angle)."""
    truth = np.zeros(shape, np.int32)
    for label, (kind, centre, *size) in enumerate(shapes, start=1):
        if kind == "disc":
            rr, cc = disk(centre, size[0], shape=shape)
        else:
            rr, cc = ellipse(*centre, size[0], size[1], shape=shape, rotation=size[2])
        truth[rr, cc] = label
    return truth


def touching_discs(radii, row=100, col=20, overlap=0.1):
    """Discs in a row, each pressed into the next by ``overlap`` of the smaller one's diameter."""
    shapes, x = [], col
    for i, r in enumerate(radii):
        x += r if i == 0 else radii[i - 1] + r - overlap * 2 * min(radii[i - 1], r)
        shapes.append(("disc", (row, x), r))
    return shapes


def triangle(r, overlap=0.95, centre=(110, 120)):
    d = 2 * r * overlap
    cy, cx = centre
    return [("disc", (cy, cx - d / 2), r), ("disc", (cy, cx + d / 2), r), ("disc", (cy - d * 0.866, cx), r)]


SCENES = {
    "pair of 8 px discs": touching_discs([4, 4]),
    "pair of 60 px discs": touching_discs([30, 30]),
    "big and small disc": touching_discs([28, 6]),
    "chain of 8 px discs": touching_discs([4] * 12),
    "chain of mixed discs": touching_discs([5, 12, 8, 20, 6, 10]),
    "triple of 12 px discs": triangle(6),
    "triple of 50 px discs": triangle(25, overlap=0.9),
    "ellipse alone": [("ellipse", (100, 100), 12, 30, 0.3)],
    "thin ellipse alone": [("ellipse", (100, 100), 5, 18, 1.0)],
    "ellipses end to end": [("ellipse", (100, 60), 10, 30, 0.0), ("ellipse", (100, 60 + 55), 10, 30, 0.0)],
    "ellipses at an angle": [("ellipse", (100, 100), 8, 20, 0.5), ("ellipse", (114, 130), 8, 20, -0.3)],
    "small ellipses at an angle": [("ellipse", (100, 100), 4, 10, 0.5), ("ellipse", (107, 111), 4, 10, -0.3)],
    "ellipses side by side": [("ellipse", (80, 100), 8, 20, 0.0), ("ellipse", (96, 100), 8, 20, 0.0)],
    "chain of ellipses": [("ellipse", (100, 30 + 34 * i), 9, 18, 0.0) for i in range(6)],
}


def assert_one_label_per_object(truth, labels):
    """As many labels as objects, each object mostly one label of its own, nothing outside."""
    assert labels.dtype == np.int32
    assert not labels[truth == 0].any(), "labels outside the mask"
    n = int(truth.max())
    assert labels.max() == n and len(np.unique(labels[labels > 0])) == n
    majority = [np.bincount(labels[truth == i], minlength=n + 1)[1:].argmax() + 1 for i in range(1, n + 1)]
    assert len(set(majority)) == n, "two objects share a label"


@pytest.mark.parametrize("name", list(SCENES))
def test_touching_discs_and_ellipses_become_one_label_each(name):
    truth = scene(SCENES[name])
    labels = ns.split_instances(truth > 0)
    assert_one_label_per_object(truth, labels)


def test_touching_pairs_of_any_size_and_angle_are_split():
    """40 random pairs of discs 8-60 px across, pressed together at random angles."""
    rng = np.random.default_rng(0)
    split = 0
    for _ in range(40):
        r1, r2 = rng.uniform(4, 30, 2)
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.sin(angle), np.cos(angle)])
        first = np.array([130.0, 130.0]) - 0.5 * (r1 + r2) * direction
        second = first + (r1 + r2 - 0.2 * min(r1, r2)) * direction
        truth = scene([("disc", tuple(first), r1), ("disc", tuple(second), r2)], shape=(260, 260))
        labels = ns.split_instances(truth > 0)
        assert not labels[truth == 0].any()
        split += labels.max() == 2
    assert split >= 38  # a small disc sunk into a large one's flat side may stay joined


@pytest.mark.parametrize("radius", [8, 15, 30])
def test_a_triple_pressed_together_with_necks_of_0_6_becomes_three(radius):
    """Three discs in a triangle, each pair's neck 0.6 of a disc's width: the clump's middle is
    its thickest part, so only the notches of its outline tell the three apart."""
    overlap = 0.8  # centres 0.8 diameters apart: a chord of sqrt(1 - 0.8**2) = 0.6 diameters
    truth = scene(triangle(radius, overlap=overlap, centre=(130, 120)), shape=(240, 240))
    assert_one_label_per_object(truth, ns.split_instances(truth > 0))


def wobbly(radius, amplitudes, shape=(200, 200)):
    rr, cc = np.mgrid[: shape[0], : shape[1]] - np.array(shape).reshape(2, 1, 1) / 2
    angle = np.arctan2(rr, cc)
    edge = 1 + sum(a * np.cos(k * angle + k) for k, a in enumerate(amplitudes, start=2))
    return np.hypot(rr, cc) <= radius * edge


def bent_rod(radius, half_width, span, shape=(200, 200)):
    rr, cc = np.mgrid[: shape[0], : shape[1]] - np.array([radius + 40, 100]).reshape(2, 1, 1)
    along = np.arctan2(cc, -rr)
    rod = (np.abs(np.hypot(rr, cc) - radius) <= half_width) & (np.abs(along) <= span / 2)
    for end in (-span / 2, span / 2):
        rod |= np.hypot(rr + radius * np.cos(end), cc - radius * np.sin(end)) <= half_width
    return rod


@pytest.mark.parametrize(
    "mask",
    [
        wobbly(30, [0.1, 0.08, 0.06, 0.05]),
        wobbly(15, [0.12, 0.1, 0.08, 0.04]),
        wobbly(40, [0.0, 0.12, 0.0, 0.1]),
        bent_rod(30, 6, 1.6),
        bent_rod(20, 4, 1.8),
        scene([("ellipse", (100, 100), 8, 25, 0.7)]) > 0,
    ],
    ids=["blob", "small blob", "lobed blob", "bent rod", "thin bent rod", "long ellipse"],
)
def test_one_irregular_object_stays_one(mask):
    assert ns.split_instances(mask).max() == 1


def test_components_method_keeps_touching_objects_together():
    truth = scene(touching_discs([10, 10]) + [("disc", (30, 200), 8)])
    labels = ns.split_instances(truth > 0, method="components")
    assert labels.max() == 2


def test_specks_under_min_size_are_dropped():
    truth = scene(touching_discs([10, 10]))
    mask = truth > 0
    mask[10:12, 10:12] = True  # 4 px
    mask[180, 230] = True  # 1 px
    labels = ns.split_instances(mask)
    assert labels.max() == 2 and not labels[10:12, 10:12].any() and labels[180, 230] == 0
    assert ns.split_instances(mask, min_size=1).max() == 4
    assert ns.split_instances(mask, min_size=400).max() == 1  # two discs of ~314 px: one object
    assert ns.split_instances(mask, min_size=700).max() == 0


def test_logit_and_probability_maps_give_the_same_objects_as_the_mask():
    from scipy import ndimage

    truth = scene(touching_discs([9, 14, 7]))
    logits = ndimage.distance_transform_edt(truth > 0) - ndimage.distance_transform_edt(truth == 0)
    logits = (logits - 0.5) * 3.0
    probabilities = 1 / (1 + np.exp(-logits))
    from_mask = ns.split_instances(logits > 0)
    assert_one_label_per_object(truth, from_mask)
    np.testing.assert_array_equal(ns.split_instances(logits.astype(np.float32)), from_mask)
    np.testing.assert_array_equal(ns.split_instances(probabilities), from_mask)


@pytest.mark.parametrize(
    ("mask", "options", "message"),
    [
        (np.zeros((4, 5, 6), bool), {}, "one 2D"),
        (np.zeros((8, 8), bool), {"method": "sam"}, "Prediction.instances"),
        (np.zeros((8, 8), bool), {"min_size": -1}, "min_size"),
        (np.array([["a"]]), {}, "boolean, integer or float"),
    ],
)
def test_bad_input_is_a_clear_error(mask, options, message):
    with pytest.raises(SansaError, match=message):
        ns.split_instances(mask, **options)


def test_objects_keep_their_id_through_a_stack():
    planes = [
        scene(touching_discs([10, 10])),
        scene(touching_discs([11, 9], col=22)),
        scene(touching_discs([10, 10]) + [("disc", (30, 200), 8)]),
    ]
    per_plane = np.stack([ns.split_instances(p > 0) for p in planes])
    linked = ns.link_planes(per_plane)
    assert linked.shape == per_plane.shape and linked.dtype == np.int32
    left, right = linked[0, 100, 30], linked[0, 100, 45]
    assert left != right and left > 0 and right > 0
    for z in (1, 2):
        assert linked[z, 100, 31] == left and linked[z, 100, 47] == right
    assert set(np.unique(linked)) == {0, 1, 2, 3}  # the new object of plane 2 gets a new id
    assert linked[2, 30, 200] not in (left, right)


# ----------------------------------------------------------------- predictions
def two_class_labels(hw):
    """Class 1: a pair of touching discs and a lone disc; class 2: a chain of three."""
    labels = np.zeros(hw, np.uint8)
    labels[scene(touching_discs([14, 12], row=70, col=20), hw) > 0] = 1
    labels[scene([("disc", (200, 60), 10)], hw) > 0] = 1
    labels[scene(touching_discs([10, 11, 10], row=150, col=160), hw) > 0] = 2
    return labels


@pytest.fixture(scope="module")
def predicted(model, samples):
    """A real prediction (it holds the model and its target), with known class labels put in."""
    from napari_sansa import Mask, Prediction, Reference

    image, truth = samples[0]
    reference = Reference(image, {1: Mask(truth == 1), 2: Mask(truth == 2)})
    prediction = model.segment([reference], [samples[1][0]])[0]
    labels = two_class_labels(prediction.labels.shape)
    return Prediction(0, labels, {}, prediction.scores, prediction._model, prediction._target)


def test_watershed_objects_and_their_table(predicted, samples):
    labels, table = predicted.instances(class_names={1: "nucleus"})
    assert labels.shape == predicted.labels.shape and labels.dtype == np.int32
    assert labels.max() == 6 and sorted(table["label"]) == list(range(1, 7))  # unique across classes
    assert not labels[predicted.labels == 0].any()
    assert list(table.columns[:4]) == ["label", "class", "class_name", "area"]
    assert {"centroid_row", "centroid_col", "bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1"} < set(table)
    assert table.columns[-1] == "score"
    assert table["area"].sum() == np.count_nonzero(labels)
    image = samples[1][0]
    for _, row in table.iterrows():
        pixels = labels == row["label"]
        assert row["area"] == pixels.sum()
        assert set(np.unique(predicted.labels[pixels])) == {row["class"]}
        rows, cols = np.nonzero(pixels)
        assert (row["bbox_row0"], row["bbox_row1"]) == (rows.min(), rows.max() + 1)
        assert row["centroid_col"] == pytest.approx(cols.mean())
        assert row["mean_intensity_0"] == pytest.approx(image[pixels][:, 0].mean())
    assert list(table["class"]) == [1, 1, 1, 2, 2, 2]
    assert list(table["class_name"]) == ["nucleus"] * 3 + [""] * 3
    assert table["score"].between(0, 1).all()  # no logits given: the class scores


def test_sam_objects_cost_no_encoder_pass_and_batch_the_prompts(fresh_model, samples, encoder_calls):
    from napari_sansa import Mask, Prediction, Reference

    calls = encoder_calls(fresh_model)
    image, truth = samples[0]
    reference = Reference(image, {1: Mask(truth == 1), 2: Mask(truth == 2)})
    first = fresh_model.segment([reference], [samples[1][0]])[0]
    assert len(calls) == 2
    prediction = Prediction(
        0, two_class_labels(first.labels.shape), first.logits, first.scores, first._model, first._target
    )
    decoder_calls = []
    hook = fresh_model.sam.sam_mask_decoder.register_forward_hook(lambda *_: decoder_calls.append(1))
    try:
        labels, table = prediction.instances("sam")
    finally:
        hook.remove()
    assert len(calls) == 2, "the target's features come from the cache"
    assert len(decoder_calls) == 1, "all six prompts in one decoder call"
    again, table_again = prediction.instances("sam")
    np.testing.assert_array_equal(again, labels)
    assert table_again.equals(table)

    from scipy import ndimage

    for class_id in (1, 2):
        near_class = ndimage.distance_transform_edt(prediction.labels != class_id) <= 3
        objects = table.loc[table["class"] == class_id, "label"]
        assert near_class[np.isin(labels, objects)].all(), "masks stay by their class"
    assert table["label"].is_unique and table["area"].sum() == np.count_nonzero(labels)
    assert 1 <= len(table) <= 6 and np.isfinite(table["score"]).all()


def test_sam_needs_the_model_of_a_real_prediction():
    from napari_sansa import Prediction

    bare = Prediction(0, two_class_labels((256, 320)))
    table = bare.instances().table
    assert len(table) == 6 and not any(c.startswith("mean_intensity") for c in table.columns)
    with pytest.raises(SansaError, match="needs the model"):
        bare.instances("sam")
    with pytest.raises(SansaError, match="Unknown method"):
        bare.instances("magic")


def test_a_prediction_pickles_without_its_model(predicted):
    import pickle

    copy = pickle.loads(pickle.dumps(predicted))
    assert copy._model is None and predicted._model is not None
    labels, table = copy.instances()  # the image came along: intensities still measured
    np.testing.assert_array_equal(labels, predicted.instances().labels)
    assert "mean_intensity_0" in table
    with pytest.raises(SansaError, match="needs the model"):
        copy.instances("sam")
