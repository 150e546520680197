"""Cluster runs on a real LocalCluster of 2 worker processes (no mocks of Dask)."""

from __future__ import annotations

import os
import signal
import threading
import time

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import TEST_IMAGE_SIZE
from napari_sansa import Mask, Reference, SansaError
from napari_sansa.cli.main import main
from napari_sansa.distributed import ModelSpec, local_cluster, segment
from napari_sansa.engine.errors import OutputExists
from napari_sansa.engine.inputs.masks import classes_from_mask
from napari_sansa.files.images import read_image, write_labels
from napari_sansa.files.outputs import expand_inputs

N_TARGETS = 3


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with local_cluster(2) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def files(tmp_path_factory, samples):
    """A reference image + mask and a folder of targets, as files."""
    root = tmp_path_factory.mktemp("cluster")
    (root / "targets").mkdir()
    iio.imwrite(root / "ref.png", samples[0][0])
    iio.imwrite(root / "ref_mask.png", samples[0][1])
    targets = []
    for i, (image, _) in enumerate(samples[1 : 1 + N_TARGETS]):
        targets.append(root / "targets" / f"cell{i}.png")
        iio.imwrite(targets[-1], image)
    return root, targets


@pytest.fixture(scope="module")
def references(files):
    root, _ = files
    classes = classes_from_mask(read_image(root / "ref_mask.png"), "each").classes
    return [Reference(read_image(root / "ref.png"), {c: Mask(m) for c, m in classes.items()})]


@pytest.fixture(scope="module")
def spec(checkpoints, config):
    return ModelSpec(*checkpoints, config=config)


@pytest.fixture(scope="module")
def serial(files, references, model, config):
    """The labels a single process writes, with as many torch threads as each worker has."""
    import torch

    from napari_sansa import Sansa
    from napari_sansa.distributed.worker import usable_cpus

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cpus() // 2))
    try:
        model = Sansa(model.sam, config, model.info)  # the shared weights, empty caches
        images = [read_image(t) for t in files[1]]
        return {t.stem: p.labels for t, p in zip(files[1], model.propagate(references, images))}
    finally:
        torch.set_num_threads(threads)


def label_files(out):
    return sorted(p.name for p in out.iterdir())


def assert_complete(out, serial):
    """Exactly one readable label file per target, equal to the single-process labels; no
    temporary files left."""
    assert label_files(out) == sorted(f"{stem}_labels.png" for stem in serial)
    for stem, labels in serial.items():
        np.testing.assert_array_equal(read_image(out / f"{stem}_labels.png"), labels)


def test_cluster_writes_what_one_process_writes(client, files, references, spec, serial, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    progress = []
    summary = segment(
        client, references, [*files[1], bad], out, model=spec, progress=lambda d, t: progress.append((d, t))
    )
    assert [r.status for r in summary.results] == ["written"] * N_TARGETS + ["failed"]
    assert "Cannot read image" in summary.results[-1].error  # reported; the others finish
    assert summary.workers == 2 and summary.first_result_seconds <= summary.seconds
    assert all(set(r.scores) == {1, 2} for r in summary.written)
    assert progress[0] == (0, N_TARGETS + 1) and progress[-1] == (N_TARGETS + 1, N_TARGETS + 1)
    assert_complete(out, serial)
    with pytest.raises(OutputExists, match="already exist"):  # nothing replaced unasked
        segment(client, references, files[1], out, model=spec)


def test_a_killed_worker_loses_nothing(client, files, references, spec, serial, tmp_path):
    pids = client.run(os.getpid)
    killed = []

    def progress(done, total):
        if done >= 1 and not killed:  # the other worker is busy with its target
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    summary = segment(
        client, references, files[1], tmp_path, model=spec, targets_per_task=1, progress=progress
    )
    assert killed
    # "skipped": the killed worker had written that output before it died, and the task's retry
    # found it complete; either way every target's labels are there, none failed
    assert len(summary.results) == N_TARGETS
    assert {r.status for r in summary.results} <= {"written", "skipped"}
    assert_complete(tmp_path, serial)


def test_resume_writes_only_what_is_missing(client, files, references, spec, serial, tmp_path):
    stems = list(serial)
    write_labels(tmp_path / f"{stems[0]}_labels.png", serial[stems[0]])
    (tmp_path / f"{stems[1]}_labels.png").write_bytes(b"\x89PNG\r\n")  # not whole: done again
    stray = tmp_path / f".{stems[2]}_labels-x1y2z3ab.png"  # a killed writer's temporary file
    stray.write_bytes(b"partial")
    os.utime(stray, (time.time() - 60,) * 2)
    before = (tmp_path / f"{stems[0]}_labels.png").stat().st_mtime_ns
    time.sleep(0.01)

    summary = segment(client, references, files[1], tmp_path, model=spec, resume=True)
    statuses = {os.path.basename(r.target): r.status for r in summary.results}
    assert statuses == {
        f"{stems[0]}.png": "skipped",
        f"{stems[1]}.png": "written",
        f"{stems[2]}.png": "written",
    }
    assert (tmp_path / f"{stems[0]}_labels.png").stat().st_mtime_ns == before
    assert_complete(tmp_path, serial)


def test_cancel_leaves_only_whole_outputs(client, files, references, spec, serial, tmp_path):
    stop = threading.Event()
    summary = segment(
        client, references, files[1], tmp_path, model=spec, targets_per_task=1,
        progress=lambda done, total: done and stop.set(), cancel=stop,
    )  # fmt: skip
    assert summary.cancelled and len(summary.written) < N_TARGETS
    assert not any(client.processing().values())  # nothing left running
    for name in label_files(tmp_path):  # whatever is there is whole
        stem = name.removesuffix("_labels.png")
        np.testing.assert_array_equal(read_image(tmp_path / name), serial[stem])


def test_unreadable_weights_give_one_line(client, files, references, config, tmp_path):
    garbage = tmp_path / "sam2.pt"
    garbage.write_bytes(os.urandom(1000))
    broken = ModelSpec(garbage, garbage, config=config)
    with pytest.raises(SansaError) as info:
        segment(client, references, files[1], tmp_path / "out", model=broken)
    message = str(info.value)
    assert "cannot load the model" in message and "sam2.pt" in message and "\n" not in message


def test_cli_cluster_end_to_end_with_the_users_umask_and_objects(files, checkpoints, tmp_path, capsys):
    root, targets = files
    sam2, adapter = checkpoints
    args = ["segment", "-r", f"{root / 'ref.png'}:{root / 'ref_mask.png'}", str(root / "targets" / "*.png")]
    args += ["--out", str(tmp_path), "--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu"]
    args += ["--image-size", str(TEST_IMAGE_SIZE), "--cluster", "local:2", "--instances", "watershed"]
    old = os.umask(0o027)
    try:
        code = main(args)
    finally:
        os.umask(old)
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"Wrote {N_TARGETS} label image(s)" in err and "Traceback" not in err
    assert [n for n in label_files(tmp_path) if "_labels" in n] == sorted(
        f"{t.stem}_labels.png" for t in targets
    )
    for target in targets:  # each task also wrote its targets' objects and their tables
        assert (tmp_path / f"{target.stem}_objects.tif").is_file()
        assert (tmp_path / f"{target.stem}_objects.csv").read_text().startswith("label,")
    assert {(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {0o640}


def test_cli_resume_without_a_cluster(files, checkpoints, serial, tmp_path, capsys, load_once):
    root, targets = files
    sam2, adapter = checkpoints
    done = write_labels(tmp_path / f"{targets[0].stem}_labels.png", serial[targets[0].stem])
    mtime = done.stat().st_mtime_ns
    args = ["segment", "-r", f"{root / 'ref.png'}:{root / 'ref_mask.png'}", *map(str, targets[:2])]
    args += ["--out", str(tmp_path), "--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu"]
    code = main([*args, "--image-size", str(TEST_IMAGE_SIZE), "--resume"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 of 2 label images are complete" in err and "Wrote 1 label image(s)" in err
    assert done.stat().st_mtime_ns == mtime
    assert label_files(tmp_path) == sorted(f"{t.stem}_labels.png" for t in targets[:2])


def test_targets_from_patterns_and_lists(files, tmp_path):
    root, targets = files
    listing = tmp_path / "list.txt"
    listing.write_text(f"# plate 1\n{targets[1]}\n\n{os.path.relpath(targets[0], tmp_path)}\n")
    assert expand_inputs([root / "targets" / "cell[0-1].png"]) == targets[:2]
    assert expand_inputs([f"@{listing}"]) == [targets[1], tmp_path / os.path.relpath(targets[0], tmp_path)]
    with pytest.raises(SansaError, match="matches no files"):
        expand_inputs([root / "*.nothing"])
    with pytest.raises(SansaError, match="file list"):
        expand_inputs([f"@{tmp_path / 'missing.txt'}"])
