"""Which planes a run treats as references and targets."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.prompts import Box, Mask, Points
from napari_sansa.plugin.core.session import ImageSource, TargetKey, plan_job, repropagation_job


def sources():
    return [
        ImageSource("a", "a", np.zeros((20, 30), np.uint8), 0),
        ImageSource("b", "b", np.zeros((20, 30), np.uint8), 0),
        ImageSource("s", "stack", np.zeros((4, 20, 30), np.uint16), 1),
    ]


def test_prompted_planes_are_references_and_all_other_planes_targets():
    prompts = {"a": {(): {1: [Box(1, 1, 10, 10)]}}, "s": {(2,): {2: [Points([[5, 5]])]}}}
    job = plan_job(sources(), prompts, checked={"b"}, locked=set())
    assert job.reference_keys == [TargetKey("a"), TargetKey("s", (2,))]
    assert [k for k, _ in job.targets] == [
        TargetKey("b"),
        TargetKey("s", (0,)),
        TargetKey("s", (1,)),
        TargetKey("s", (3,)),
    ]
    assert job.classes == [1, 2]


def test_a_checked_annotated_image_is_segmented_too_except_its_locked_planes():
    prompts = {
        "a": {(): {1: [Box(1, 1, 10, 10)]}},
        "s": {(1,): {1: [Box(1, 1, 5, 5)]}, (2,): {2: [Box(2, 2, 5, 5)]}},
    }
    job = plan_job(sources(), prompts, checked={"a", "s"}, locked={TargetKey("s", (2,))}, through_stacks=True)
    assert job.reference_keys == [TargetKey("a"), TargetKey("s", (1,)), TargetKey("s", (2,))]
    keys = [k for k, _ in job.targets]
    assert keys == [TargetKey("a"), TargetKey("s", (0,)), TargetKey("s", (3,)), TargetKey("s", (1,))]
    # the annotated plane is segmented on its own from the references; the others through the stack
    assert [k for k, _ in job.independent()] == [TargetKey("a"), TargetKey("s", (1,))]
    assert job.stacks[0].keys == [TargetKey("s", (0,)), TargetKey("s", (3,))]


def test_locked_and_unchecked_images_are_never_targets():
    prompts = {"a": {(): {1: [Box(1, 1, 10, 10)]}}}
    locked = {TargetKey("s", (1,)), TargetKey("b")}
    job = plan_job(sources(), prompts, checked={"b", "s"}, locked=locked)
    assert [k for k, _ in job.targets] == [TargetKey("s", (0,)), TargetKey("s", (2,)), TargetKey("s", (3,))]
    job = plan_job(sources(), prompts, checked=set(), locked=set())
    assert job.targets == []


def test_a_mask_wins_over_clicks_of_the_same_class_on_the_same_plane():
    mask = np.zeros((20, 30), bool)
    mask[2:5, 2:5] = True
    prompts = {"a": {(): {1: [Points([[1, 1]]), Mask(mask)]}}}
    job = plan_job(sources(), prompts, checked=set(), locked=set())
    assert [type(p).__name__ for p in job.references[0].prompts[1]] == ["Mask"]


def test_propagating_from_a_corrected_plane_redoes_only_unlocked_planes_after_it():
    source = ImageSource("s", "stack", np.zeros((5, 8, 8), np.uint8), 1)
    seed = np.zeros((8, 8), bool)
    seed[2:5, 2:5] = True
    prompts = {(0,): {1: [Mask(seed)]}}
    corrected = np.zeros((8, 8), np.uint8)
    corrected[1:4, 1:4] = 2
    locked = {TargetKey("s", (3,))}
    job = repropagation_job(source, prompts, locked, TargetKey("s", (1,)), corrected)
    assert [k.plane for k, _ in job.targets] == [(2,), (4,)]
    (stack,) = job.stacks
    assert stack.start == 1 and sorted(stack.annotations) == [0, 1]
    assert stack.skip == {0, 1, 3} and job.classes == [1, 2]
    with pytest.raises(SansaError, match="empty"):
        repropagation_job(source, prompts, set(), TargetKey("s", (1,)), np.zeros((8, 8), np.uint8))
    with pytest.raises(SansaError, match="no unlocked planes"):
        repropagation_job(source, prompts, set(), TargetKey("s", (4,)), corrected)
