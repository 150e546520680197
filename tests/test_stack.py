"""Segmenting through the stack: plane order, memory, conditioning planes, re-propagation, inputs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import napari_sansa as ns
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import MemoryEntry
from napari_sansa.engine.runs.stack import condition_on_track
from napari_sansa.samples import cells

SHAPE = (128, 160)


@pytest.fixture(scope="module")
def planes():
    """Five RGB planes with their true labels."""
    return cells(5, shape=SHAPE, seed=5)


@pytest.fixture(scope="module")
def volume(planes):
    return np.stack([image for image, _ in planes])  # (Z, Y, X, 3) uint8


def nuclei(planes, z, class_id=1):
    return ns.Mask(planes[z][1] == class_id)


@pytest.fixture(scope="module")
def middle(planes):
    """Class 1 annotated on the middle plane."""
    return {2: {1: nuclei(planes, 2)}}


@pytest.fixture(scope="module")
def full(model, volume, middle):
    """Predictions of the whole stack from the middle plane, and the progress reports."""
    reports = []
    preds = list(model.propagate_stack(volume, middle, progress=lambda *a: reports.append(a)))
    return preds, reports


def indices(model, stack, annotations, **options):
    return [p.index for p in model.propagate_stack(stack, annotations, **options)]


def logits(model, stack, annotations, class_id=1, **options):
    return {p.index: p.logits[class_id] for p in model.propagate_stack(stack, annotations, **options)}


def assert_same(got, expected, planes):
    assert list(got) == list(planes)
    for z in planes:
        np.testing.assert_array_equal(got[z], expected[z])


def test_every_plane_comes_once_forwards_then_backwards(full):
    preds, reports = full
    assert [p.index for p in preds] == [3, 4, 1, 0]
    assert reports == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    for pred in preds:
        assert pred.labels.shape == SHAPE and set(np.unique(pred.labels)) <= {0, 1}
        np.testing.assert_array_equal(pred.labels == 1, pred.logits[1] > 0)
        assert 0.0 <= pred.scores[1] <= 1.0


def test_one_way_goes_forwards_only(model, volume, middle, full):
    expected = {p.index: p.logits[1] for p in full[0]}
    assert_same(logits(model, volume, middle, both_ways=False), expected, [3, 4])


def test_skipped_planes_are_not_yielded_but_carry_memory(model, volume, middle, full):
    expected = {p.index: p.logits[1] for p in full[0]}
    # were planes 3 and 1 left out of memory, planes 4 and 0 would change
    assert_same(logits(model, volume, middle, skip={3, 1}), expected, [4, 0])


def test_far_planes_remember_the_planes_between(model, volume, middle, full):
    changed = volume.copy()
    changed[3] = 255 - changed[3]
    before = {p.index: p.logits[1] for p in full[0]}
    after = logits(model, changed, middle)
    assert not np.allclose(before[4], after[4])
    # the backward pass starts again from the annotated plane: it does not see plane 3
    np.testing.assert_array_equal(before[1], after[1])
    # independent images (Sansa.propagate) would not feel the change
    ref = [ns.Reference(volume[2], middle[2])]
    independent = [model.segment(ref, [stack[4]])[0].logits[1] for stack in (volume, changed)]
    np.testing.assert_array_equal(*independent)


def test_every_annotated_plane_conditions_its_class(model, planes, volume, middle, full):
    one = {p.index: p.logits[1] for p in full[0]}
    two = logits(model, volume, {**middle, 4: {1: nuclei(planes, 4)}})
    assert list(two) == [3, 1, 0]
    assert not np.allclose(one[3], two[3])
    # plane 1 is tracked backwards from plane 2, and sees plane 4 only as a conditioning plane
    assert not np.allclose(one[1], two[1])


def test_start_repropagates_away_from_the_corrected_plane(model, planes, volume):
    annotations = {1: {1: nuclei(planes, 1)}, 3: {1: nuclei(planes, 3)}}
    assert indices(model, volume, annotations, start=3) == [4, 2, 0]
    before = logits(model, volume, annotations, start=3, both_ways=False)
    assert list(before) == [4]
    corrected = {**annotations, 3: {1: ns.Box(10, 10, 60, 70)}}
    after = logits(model, volume, corrected, start=3, both_ways=False)
    assert not np.allclose(before[4], after[4])
    with pytest.raises(ns.SansaError, match="start is plane 2, which is not annotated"):
        model.propagate_stack(volume, annotations, start=2)


def test_each_plane_is_encoded_once(fresh_model, encoder_calls, planes, volume):
    calls = encoder_calls(fresh_model)
    # plane 3 is annotated for class 2 only: not yielded, but class 1 is tracked through it
    annotations = {1: {1: nuclei(planes, 1)}, 3: {2: nuclei(planes, 3, 2)}}
    preds = list(fresh_model.propagate_stack(volume, annotations))
    assert [p.index for p in preds] == [2, 4, 0]
    assert all(set(p.logits) == {1, 2} for p in preds)
    assert len(calls) == fresh_model.encoder_passes == len(volume)


class PlaneReader:
    """An array-like that records which planes are read and refuses to be read whole."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim, self.reads = data, data.shape, data.dtype, data.ndim, []

    def __getitem__(self, key):
        assert isinstance(key, int), f"read {key!r}, not a single plane"
        self.reads.append(key)
        return self.data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole volume was read")


def test_lazy_stacks_are_read_plane_by_plane(model, volume, middle, full):
    import dask.array as da
    import zarr

    expected = {p.index: p.logits[1] for p in full[0]}
    reader = PlaneReader(volume)
    assert_same(logits(model, reader, middle), expected, [3, 4, 1, 0])
    assert sorted(reader.reads) == list(range(len(volume)))
    lazy = [da.from_array(volume, chunks=(1, *volume.shape[1:])), zarr.array(volume, chunks=(1, 64, 64, 3))]
    for stack in lazy:
        assert_same(logits(model, stack, middle, both_ways=False), expected, [3, 4])


def test_grayscale_stacks_and_image_sequences(model, volume, middle):
    gray = volume[:4, ..., 1].astype(np.uint16) * 40
    images = [ns.Image(plane, contrast_limits=(0, 255 * 40)) for plane in gray]
    default = logits(model, gray, middle, both_ways=False)
    limited = logits(model, images, middle, both_ways=False)
    assert list(default) == list(limited) == [3]
    assert not np.allclose(default[3], limited[3])  # the contrast limits reach the model


@pytest.mark.parametrize(
    "stack, annotations, message",
    [
        (np.zeros((4, 64, 64)), {9: {1: ns.Box(1, 1, 20, 20)}}, "plane 9, but the stack has 4 planes"),
        (np.zeros((4, 64, 64)), {-1: {1: ns.Box(1, 1, 20, 20)}}, "plane -1"),
        (np.zeros((64, 64)), {0: {1: ns.Box(1, 1, 20, 20)}}, "single 2D image"),
        (np.zeros((64, 64, 3)), {0: {1: ns.Box(1, 1, 20, 20)}}, "looks like one image"),
        (np.zeros((2, 64, 64, 8)), {0: {1: ns.Box(1, 1, 20, 20)}}, "8 channels"),
        (np.zeros((0, 64, 64)), {0: {1: ns.Box(1, 1, 20, 20)}}, "no planes"),
        (np.zeros((4, 64, 64)), {}, "No annotated plane"),
        (np.zeros((4, 64, 64)), {1: {}}, "Plane 1 has no prompts"),
        (np.zeros((4, 64, 64)), {1: {0: ns.Box(1, 1, 20, 20)}}, "0 is the background"),
        (np.zeros((4, 64, 64)), {2: {1: ns.Mask(np.ones((40, 64)))}}, "class 1 on plane 2 has shape"),
        (np.zeros((4, 64, 64)), {3: {1: ns.Points([[10, 80]])}}, "class 1 on plane 3 lies outside"),
        ("volume.tif", {0: {1: ns.Box(1, 1, 20, 20)}}, "not str"),
        (ns.Image(np.zeros((4, 64, 64))), {0: {1: ns.Box(1, 1, 20, 20)}}, "not Image"),
        ([np.zeros((64, 64)), np.zeros((3, 9, 64, 64))], {1: {1: ns.Box(1, 1, 20, 20)}}, "Plane 1: Expected"),
    ],
)
def test_bad_inputs_raise_a_clear_error_before_any_work(model, encoder_calls, stack, annotations, message):
    calls = encoder_calls(model)
    with pytest.raises(ns.SansaError, match=message):
        model.propagate_stack(stack, annotations)
    assert calls == []


def test_a_bad_plane_is_reported_and_the_others_go_on(model, volume, middle):
    stack = list(volume[:4])
    stack[3] = np.zeros((5, 40, 40))  # a 3D array where a plane should be
    with pytest.raises(ns.SansaError, match="stack of 5 planes"):
        list(model.propagate_stack(stack, middle))
    failures = []
    preds = list(model.propagate_stack(stack, middle, on_error=lambda i, e: failures.append(i)))
    assert [p.index for p in preds] == [1, 0] and failures == [3]


def test_cancel_stops_between_planes(model, volume, middle):
    stop = threading.Event()
    seen = []
    for pred in model.propagate_stack(volume, middle, cancel=stop):
        seen.append(pred.index)
        stop.set()
    assert seen == [3]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("pointer_encoding", [False, True])
def test_memory_selection_matches_sam2(model, monkeypatch, reverse, pointer_encoding):
    """The memory a plane attends to is what SAM2's own video tracking would give it."""
    sam = model.sam
    monkeypatch.setattr(sam, "add_tpos_enc_to_obj_ptrs", pointer_encoding)
    gen = torch.Generator().manual_seed(0)
    side = model.image_size // 16

    def entry():
        return MemoryEntry(
            torch.randn(1, sam.mem_dim, side, side, generator=gen),
            torch.randn(1, sam.mem_dim, side, side, generator=gen),
            torch.randn(1, sam.hidden_dim, generator=gen),
        )

    count, plane = 24, 12
    cond = {2: entry(), 14: entry(), 20: entry()}
    done = range(3, 12) if not reverse else range(21, 12, -1)
    recent = {t: entry() for t in done if t not in cond and t not in (7, 17)}  # failed planes: gaps
    feats = ImageFeatures(
        (torch.randn(1, 32, side * 4, side * 4), torch.randn(1, 64, side * 2, side * 2)),
        torch.randn(1, sam.hidden_dim, side, side, generator=gen),
    )
    pos = torch.randn(1, sam.hidden_dim, side, side, generator=gen)

    def outputs(entries):
        return {
            t: {"maskmem_features": e.features, "maskmem_pos_enc": [e.pos], "obj_ptr": e.obj_ptr}
            for t, e in entries.items()
        }

    with torch.inference_mode():
        ours = condition_on_track(sam, feats, pos, plane, cond, recent, reverse=reverse, num_planes=count)
        theirs = sam._prepare_memory_conditioned_features(
            frame_idx=plane,
            is_init_cond_frame=False,
            current_vision_feats=[feats.top_tokens()],
            current_vision_pos_embeds=[pos.flatten(2).permute(2, 0, 1)],
            feat_sizes=[(side, side)],
            output_dict={"cond_frame_outputs": outputs(cond), "non_cond_frame_outputs": outputs(recent)},
            num_frames=count,
            track_in_reverse=reverse,
        )
    torch.testing.assert_close(ours, theirs)


def test_objects_of_a_plane_tracked_through_the_stack_need_no_encoder_pass(fresh_model, encoder_calls):
    """Objects (with mean intensities, and SAM2's own outlines) come from the plane's cached features."""
    model = fresh_model
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 96, 128)) * 255).astype(np.uint8)
    mask = np.zeros((96, 128), bool)
    mask[30:60, 40:80] = True
    predictions = list(model.propagate_stack(stack, {0: {1: ns.Mask(mask)}}))
    calls = encoder_calls(model)
    for prediction in predictions:
        for method in ("watershed", "sam"):
            objects, table = prediction.instances(method)
            assert objects.shape == (96, 128) and "mean_intensity" in table.columns
    assert calls == []
