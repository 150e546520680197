"""Which image to annotate next: uncertainty and novelty, from cached features."""

from __future__ import annotations

import pytest

import napari_sansa as ns
from napari_sansa.engine.runs.annotation_ranking import rank_candidates


@pytest.fixture
def reference(samples):
    image, labels = samples[0]
    return ns.Reference(image, {1: ns.Mask(labels == 1)})


def test_an_image_unlike_the_references_comes_first_and_a_copy_of_one_last(fresh_model, samples, reference):
    image = samples[1][0]
    targets = [samples[0][0].copy(), image, 255 - image]  # a copy of the reference, a sample, its negative
    order = fresh_model.rank_for_annotation([reference], targets, scores=[0.5, 0.5, 0.5])
    assert order == [2, 1, 0]
    candidates = rank_candidates(fresh_model, [reference], targets, scores=[0.5] * 3)
    assert candidates[-1].novelty == pytest.approx(0.0, abs=1e-9)


def test_among_look_alikes_the_least_confident_comes_first(fresh_model, samples, reference):
    image = samples[1][0]
    order = fresh_model.rank_for_annotation([reference], [image, image, image], scores=[0.9, 0.2, 0.5])
    assert order == [1, 2, 0]


def test_novelty_outweighs_a_small_difference_in_confidence_and_the_weight_says_how_much(
    fresh_model, samples, reference
):
    image = samples[1][0]
    targets, scores = [image, 255 - image], [0.4, 0.5]
    assert fresh_model.rank_for_annotation([reference], targets, scores=scores) == [1, 0]
    uncertain_only = rank_candidates(fresh_model, [reference], targets, scores=scores, novelty_weight=0.0)
    assert [c.index for c in uncertain_only] == [0, 1]


def test_ranking_cached_targets_costs_no_encoder_pass(fresh_model, samples, reference, encoder_calls):
    targets = [image for image, _ in samples[1:4]]
    predictions = fresh_model.segment([reference], targets)
    calls = encoder_calls(fresh_model)
    candidates = rank_candidates(fresh_model, [reference], targets)  # propagates again, from the cache
    assert calls == []
    assert sorted(c.index for c in candidates) == [0, 1, 2]
    by_index = {c.index: c for c in candidates}
    for prediction in predictions:  # without scores, the confidences are the propagation's
        assert by_index[prediction.index].confidence == pytest.approx(prediction.score)


def test_wrong_inputs_are_explained(fresh_model, samples, reference):
    with pytest.raises(ns.SansaError, match="No references"):
        fresh_model.rank_for_annotation([], [samples[1][0]])
    with pytest.raises(ns.SansaError, match="one per target"):
        fresh_model.rank_for_annotation([reference], [samples[1][0]], scores=[0.5, 0.5])
