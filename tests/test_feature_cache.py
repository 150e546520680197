"""Batches of targets and features beyond the memory budget: same results, fewer encoder passes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import napari_sansa as ns


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


@pytest.fixture
def job(samples):
    image, labels = samples[0]
    refs = [ns.Reference(image, {1: ns.Mask(labels == 1), 2: ns.Mask(labels == 2)})]
    return refs, [image for image, _ in samples[1:6]]


@pytest.fixture
def build(model_with, tmp_path):
    """``build(**options)``: a model with empty caches, its disk cache in tmp_path/features."""
    return lambda **options: model_with(disk_cache_dir=str(tmp_path / "features"), **options)


def test_batched_targets_give_the_same_labels_as_one_at_a_time(build, tmp_path, job, encoder_calls):
    refs, targets = job
    single = build().segment(refs, targets)
    batched_model = build(batch_size=3)
    calls = encoder_calls(batched_model)
    batched = batched_model.segment(refs, targets)
    assert len(calls) == 1 + 2  # the reference, then the targets in batches of 3 and 2
    assert batched_model.encoder_passes == 1 + len(targets)
    assert [p.index for p in batched] == list(range(len(targets)))
    for a, b in zip(single, batched):
        assert a.labels.shape == b.labels.shape
        assert iou(a.labels > 0, b.labels > 0) > 0.99
        for class_id in (1, 2):
            np.testing.assert_allclose(a.logits[class_id], b.logits[class_id], atol=1e-3)
            assert a.scores[class_id] == pytest.approx(b.scores[class_id], abs=1e-3)


def test_a_bad_target_in_a_batch_skips_only_itself(build, tmp_path, job):
    refs, targets = job
    model = build(batch_size=4)
    errors = []
    targets = [targets[0], np.zeros((0, 5)), targets[1], targets[2]]
    done = model.segment(refs, targets, on_error=lambda i, e: errors.append(i))
    assert errors == [1]
    assert [p.index for p in done] == [0, 2, 3]


def test_features_beyond_the_memory_budget_are_read_back_from_disk(build, tmp_path, job, encoder_calls):
    refs, targets = job
    model = build(cache_bytes=1)  # one image in memory, the rest on disk
    calls = encoder_calls(model)
    first = model.segment(refs, targets)
    assert len(calls) == 1 + len(targets)
    assert len(model.features) == 1 and len(model.features.disk) == len(targets)
    again = model.segment(refs, targets)
    assert len(calls) == 1 + len(targets)  # nothing encoded again
    assert model.features.disk_hits >= len(targets)
    for a, b in zip(first, again):  # fp16 on disk: the same masks
        assert iou(a.labels > 0, b.labels > 0) > 0.98


def test_the_disk_cache_keeps_to_its_budget_and_is_deleted_with_the_model(build, tmp_path, job):
    refs, targets = job
    model = build(cache_bytes=1)
    model.segment(refs, targets[:1])
    per_image = model.features.disk.nbytes
    budget = 2 * per_image + per_image // 2
    model = build(cache_bytes=1, disk_cache_bytes=budget)
    model.segment(refs, targets)
    folder = model.features.disk.folder
    assert len(model.features.disk) == 2
    assert sum(f.stat().st_size for f in folder.iterdir()) <= budget * 1.05  # npz headers
    model.close()
    assert not folder.exists()


def test_no_disk_cache_means_recomputing(build, tmp_path, job, encoder_calls):
    refs, targets = job
    model = build(cache_bytes=1, disk_cache_bytes=0)
    calls = encoder_calls(model)
    model.segment(refs, targets[:2])
    model.segment(refs, targets[:2])
    assert model.features.disk is None
    assert len(calls) > 1 + 2
    assert not (tmp_path / "features").exists()


def test_an_unwritable_disk_cache_falls_back_to_recomputing(build, tmp_path, job):
    refs, targets = job
    (tmp_path / "features").write_text("a file where the folder should be")
    model = build(cache_bytes=1)
    assert len(model.segment(refs, targets[:3])) == 3
    assert len(model.features.disk) == 0


def test_a_crashed_process_leaves_no_feature_files_behind(build, checkpoints, tmp_path, job):
    root = tmp_path / "features"
    code = (
        "import os, sys, numpy as np, napari_sansa as ns\n"
        f"m = ns.Sansa.from_checkpoints(*{[str(p) for p in checkpoints]!r}, config=ns.SansaConfig("
        f"device='cpu', image_size=256, cache_bytes=1, disk_cache_dir={str(root)!r}))\n"
        "rng = np.random.default_rng(0)\n"
        "[m.encode(rng.integers(0, 255, (64, 64), dtype=np.uint8)) for _ in range(3)]\n"
        "os._exit(1)  # no cleanup, as in a crash\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False, env={**os.environ})
    left = [f for f in root.iterdir()]
    assert len(left) == 1 and any(left[0].iterdir())
    refs, targets = job
    build(cache_bytes=1).segment(refs, targets[:2])  # the next run cleans up
    assert left[0] not in list(root.iterdir())
