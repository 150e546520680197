"""Propagation: every prompt type, k shots, classes, the feature cache, cancel, determinism."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import napari_sansa as ns
from conftest import disk_mask
from napari_sansa.engine.runs import predicting


@pytest.fixture
def ref_image(samples):
    return samples[0][0]


@pytest.fixture
def targets(samples):
    return [image for image, _ in samples[1:4]]


@pytest.mark.parametrize(
    "prompt",
    [
        ns.Mask(disk_mask((256, 320), (120, 150), 40)),
        ns.Box(80, 110, 160, 190),
        ns.Points([[120, 150], [20, 20]], labels=[1, 0]),
        ns.Scribble([[100, 130], [140, 170], [120, 190]]),
        [ns.Box(80, 110, 160, 190), ns.Points([[120, 150]])],
    ],
    ids=["mask", "box", "points", "scribble", "box+points"],
)
def test_every_prompt_type_labels_every_target_at_its_own_size(model, ref_image, prompt):
    targets = [np.zeros((200, 300, 3), np.uint8), np.full((90, 70), 1000, np.uint16)]
    preds = model.segment([ns.Reference(ref_image, {1: prompt})], targets)
    assert [p.index for p in preds] == [0, 1]
    for pred, target in zip(preds, targets):
        assert pred.labels.shape == target.shape[:2]
        assert pred.labels.dtype == np.uint8
        assert set(np.unique(pred.labels)) <= {0, 1}
        assert pred.logits[1].shape == target.shape[:2] and pred.logits[1].dtype == np.float32
        np.testing.assert_array_equal(pred.labels == 1, pred.logits[1] > 0)
        assert 0.0 <= pred.scores[1] <= 1.0


def test_prompts_change_the_result(model, ref_image, targets):
    a = model.segment([ns.Reference(ref_image, {1: ns.Box(10, 10, 60, 60)})], targets[:1])[0]
    b = model.segment([ns.Reference(ref_image, {1: ns.Box(150, 200, 250, 310)})], targets[:1])[0]
    assert not np.allclose(a.logits[1], b.logits[1])


def test_inverted_box_corners_mean_the_same_box(model, ref_image, targets):
    a = model.segment([ns.Reference(ref_image, {1: ns.Box(80, 110, 160, 190)})], targets[:1])[0]
    b = model.segment([ns.Reference(ref_image, {1: ns.Box(160, 190, 80, 110)})], targets[:1])[0]
    np.testing.assert_array_equal(a.logits[1], b.logits[1])


def test_more_shots_change_the_prediction_and_the_first_reference_conditions(model, samples, targets):
    (img0, lab0), (img1, lab1), (img2, lab2) = samples[0], samples[4], samples[5]
    refs = [
        ns.Reference(img, {1: ns.Mask(lab == 1)}) for img, lab in ((img0, lab0), (img1, lab1), (img2, lab2))
    ]
    one = model.segment(refs[:1], targets[:1])[0].logits[1]
    three = model.segment(refs, targets[:1])[0].logits[1]
    reordered = model.segment([refs[1], refs[0], refs[2]], targets[:1])[0].logits[1]
    assert not np.allclose(one, three)
    assert not np.allclose(three, reordered)


def test_a_class_uses_only_the_references_it_is_annotated_on(model, samples, targets):
    (img0, lab0), (img1, lab1) = samples[0], samples[4]
    only_class_1 = [ns.Reference(img0, {1: ns.Mask(lab0 == 1)})]
    both = [ns.Reference(img0, {1: ns.Mask(lab0 == 1)}), ns.Reference(img1, {2: ns.Mask(lab1 == 1)})]
    alone = model.segment(only_class_1, targets[:1])[0]
    together = model.segment(both, targets[:1])[0]
    np.testing.assert_array_equal(alone.logits[1], together.logits[1])
    assert set(together.logits) == {1, 2}


def test_overlapping_classes_go_to_the_highest_logit(model, samples, targets):
    image, labels = samples[0]
    refs = [
        ns.Reference(image, {1: ns.Mask(labels == 1), 2: ns.Box(0, 0, 255, 319), 7: ns.Mask(labels == 2)})
    ]
    pred = model.segment(refs, targets[:1])[0]
    stacked = np.stack([pred.logits[c] for c in (1, 2, 7)])
    expected = np.where(stacked.max(0) > 0, np.array([1, 2, 7])[stacked.argmax(0)], 0)
    np.testing.assert_array_equal(pred.labels, expected)


def test_many_classes_get_a_wide_enough_label_dtype(model, samples, targets):
    image, labels = samples[0]
    pred = model.segment([ns.Reference(image, {300: ns.Mask(labels == 1)})], targets[:1])[0]
    assert pred.labels.dtype == np.uint16
    assert set(np.unique(pred.labels)) <= {0, 300}


def test_each_image_is_encoded_once(fresh_model, encoder_calls, samples, targets):
    calls = encoder_calls(fresh_model)
    img0, lab0 = samples[0]
    refs = [ns.Reference(img0, {1: ns.Mask(lab0 == 1)})]
    fresh_model.segment(refs, targets)
    assert len(calls) == 1 + len(targets)

    # new prompts, a second class, a second reference that was a target: no encoder pass
    refs = [
        ns.Reference(img0, {1: ns.Box(10, 10, 90, 90), 2: ns.Mask(lab0 == 2)}),
        ns.Reference(targets[0], {1: ns.Points([[50, 50]])}),
    ]
    fresh_model.segment(refs, targets)
    assert len(calls) == 1 + len(targets)
    assert fresh_model.encoder_passes == len(calls)


def test_reference_memories_are_computed_once_per_class(fresh_model, samples, targets):
    encodes = []
    handle = fresh_model.sam.memory_encoder.register_forward_hook(lambda *_: encodes.append(1))
    try:
        image, labels = samples[0]
        refs = [ns.Reference(image, {1: ns.Mask(labels == 1), 2: ns.Mask(labels == 2)})]
        fresh_model.segment(refs, targets)
        assert len(encodes) == 2  # one memory per class, reused for all three targets
        fresh_model.segment(refs, targets[:1])
        assert len(encodes) == 2
    finally:
        handle.remove()


def test_cancel_stops_between_targets_and_keeps_finished_ones(model, samples, targets):
    image, labels = samples[0]
    stop = threading.Event()
    seen = []
    for pred in model.propagate([ns.Reference(image, {1: ns.Mask(labels == 1)})], targets, cancel=stop):
        seen.append(pred.index)
        stop.set()
    assert seen == [0]


def test_progress_reports_done_and_total(model, samples, targets):
    image, labels = samples[0]
    reports = []
    model.segment(
        [ns.Reference(image, {1: ns.Mask(labels == 1)})],
        targets,
        progress=lambda d, t: reports.append((d, t)),
    )
    assert reports == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_targets_can_be_a_lazy_iterator(model, samples):
    image, labels = samples[0]
    lazy = (img for img, _ in samples[1:3])
    preds = model.segment([ns.Reference(image, {1: ns.Mask(labels == 1)})], lazy)
    assert [p.index for p in preds] == [0, 1]


def test_results_are_deterministic(checkpoints, config, fresh_model, samples, targets):
    image, labels = samples[0]
    refs = [ns.Reference(image, {1: ns.Points([[120, 150]])})]
    first = ns.Sansa.from_checkpoints(*checkpoints, config=config).segment(refs, targets[:2])
    second = fresh_model.segment(refs, targets[:2])  # the session's load of the same files
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.logits[1], b.logits[1])
        assert a.scores == b.scores


def test_independent_targets_do_not_depend_on_order(model, samples, targets):
    image, labels = samples[0]
    refs = [ns.Reference(image, {1: ns.Mask(labels == 1)})]
    forward = model.segment(refs, targets)
    backward = model.segment(refs, targets[::-1])
    np.testing.assert_array_equal(forward[0].logits[1], backward[-1].logits[1])


def test_sequential_mode_remembers_previous_targets(model, samples, targets):
    image, labels = samples[0]
    refs = [ns.Reference(image, {1: ns.Mask(labels == 1)})]
    independent = model.segment(refs, targets)
    sequential = model.segment(refs, targets, sequential=True)
    np.testing.assert_array_equal(independent[0].logits[1], sequential[0].logits[1])
    assert not np.allclose(independent[2].logits[1], sequential[2].logits[1])


@pytest.mark.parametrize(
    "references, message",
    [
        ([], "No references"),
        ([ns.Reference(np.zeros((50, 50)), {})], "no prompts"),
        ([ns.Reference(np.zeros((50, 50)), {0: ns.Box(1, 1, 20, 20)})], "0 is the background"),
        ([ns.Reference(np.zeros((50, 50)), {-2: ns.Box(1, 1, 20, 20)})], "not allowed"),
        ([ns.Reference(np.zeros((50, 50)), {1: ns.Mask(np.zeros((40, 50), bool))})], "shape"),
        ([ns.Reference(np.zeros((50, 50)), {1: ns.Mask(np.zeros((50, 50), bool))})], "empty"),
        ([ns.Reference(np.zeros((50, 50)), {1: ns.Points([[10, 80]])})], "outside"),
        ([ns.Reference(np.zeros((50, 50)), {1: ns.Box(10, 10, 10, 40)})], "no area"),
        ([ns.Reference(np.zeros((50, 50)), {1: ns.Points([[10, 10]], labels=[0])})], "only negative"),
        ([ns.Reference(np.zeros((50, 50)), {1: ns.Scribble([[60, 60], [90, 90]])})], "outside"),
        ([ns.Reference(np.zeros((30, 50, 50)), {1: ns.Box(1, 1, 20, 20)})], "stack of 30 planes"),
        ([ns.Reference(np.zeros((0, 50)), {1: ns.Box(1, 1, 20, 20)})], "empty"),
    ],
    ids=[
        "none",
        "no-prompts",
        "class-0",
        "negative-class",
        "mask-shape",
        "empty-mask",
        "point-outside",
        "zero-area-box",
        "only-negative",
        "scribble-outside",
        "3d-image",
        "0-size",
    ],
)
def test_bad_references_raise_a_clear_error_before_any_work(fresh_model, encoder_calls, references, message):
    calls = encoder_calls(fresh_model)
    with pytest.raises(ns.SansaError, match=message):
        fresh_model.segment(references, [np.zeros((50, 50))])
    assert calls == []


def test_a_bad_target_raises_a_clear_error(model, samples):
    image, labels = samples[0]
    with pytest.raises(ns.SansaError, match="stack"):
        model.segment([ns.Reference(image, {1: ns.Mask(labels == 1)})], [np.zeros((8, 50, 50))])


def test_a_failing_target_is_reported_and_skipped_when_asked(model, samples, targets):
    image, labels = samples[0]
    refs = [ns.Reference(image, {1: ns.Mask(labels == 1)})]
    bad = [targets[0], np.zeros((12, 40, 40)), targets[1]]
    with pytest.raises(ns.SansaError):
        model.segment(refs, bad)
    failures = []
    preds = model.segment(refs, bad, on_error=lambda i, e: failures.append((i, str(e))))
    assert [p.index for p in preds] == [0, 2]
    assert failures[0][0] == 1 and "stack of 12 planes" in failures[0][1]


def test_running_out_of_memory_says_what_to_change(fresh_model, samples, targets, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    image, labels = samples[0]
    monkeypatch.setattr(predicting, "predict_batch", oom)
    with pytest.raises(ns.SansaError, match="Out of CPU memory.*bf16.*smaller input size"):
        fresh_model.segment([ns.Reference(image, {1: ns.Mask(labels == 1)})], targets[:1])


def test_a_very_large_image_seen_whole_is_labelled_at_full_size(model, samples):
    image, labels = samples[0]
    big = np.kron(samples[1][0][..., 0], np.ones((10, 10), np.uint8)).astype(np.int32)  # 2560 x 3200
    pred = model.segment([ns.Reference(image, {1: ns.Mask(labels == 1)})], [big], tile_size=None)[0]
    assert pred.labels.shape == big.shape and pred.logits[1].shape == big.shape


def test_an_estimate_costs_no_extra_encoder_pass_and_scales_with_targets(fresh_model, encoder_calls, samples):
    calls = encoder_calls(fresh_model)
    image, labels = samples[0]
    refs = [ns.Reference(image, {1: ns.Mask(labels == 1), 2: ns.Mask(labels == 2)})]
    ten, hundred = fresh_model.estimate(refs, 10), fresh_model.estimate(refs, 100)
    assert len(calls) == 1  # the reference, which the run needs anyway
    assert hundred.seconds == pytest.approx(100 * hundred.seconds_per_target)
    assert ten.memory_bytes < hundred.memory_bytes
    assert ten.seconds_per_target > 0 and ten.feature_bytes_per_image == fresh_model.encode(image).nbytes
    assert "100 image(s)" in str(hundred)


def test_the_feature_cache_has_a_byte_budget(model_with, samples):
    image_bytes = None
    model = model_with(cache_bytes=1)
    for image, _ in samples[:3]:
        image_bytes = model.encode(image).nbytes
    assert len(model.features) == 1 and model.features.nbytes == image_bytes
    default = model_with(cache_bytes=None)
    assert 0 < default.features.max_bytes <= 2**30
