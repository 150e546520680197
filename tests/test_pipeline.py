"""A run a crash left half-written, resumed: every target owes its labels and, with
``--instances``, its objects; ``--resume`` completes what is missing or cut short and leaves the
finished targets' files as they were (on this machine and on a local Dask cluster)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from conftest import TEST_IMAGE_SIZE
from napari_sansa.cli.main import main
from napari_sansa.files.images import read_image

STEMS = ("done", "no_objects", "no_labels", "cut_short")


@pytest.fixture
def crashed(tmp_path, samples, checkpoints, capsys, load_once):
    """A finished ``--instances watershed`` run, then left as a crash leaves it: one target
    finished, one with labels but no objects, one with objects but no labels, one whose label
    file is cut short. Returns the command, the folder and the first run's labels."""
    (tmp_path / "targets").mkdir()
    iio.imwrite(tmp_path / "ref.png", samples[0][0])
    iio.imwrite(tmp_path / "ref_mask.png", samples[0][1])
    for stem, (image, _) in zip(STEMS, samples[1:]):
        iio.imwrite(tmp_path / "targets" / f"{stem}.png", image)
    sam2, adapter = checkpoints
    out = tmp_path / "out"
    args = ["segment", "-r", f"{tmp_path / 'ref.png'}:{tmp_path / 'ref_mask.png'}", str(tmp_path / "targets")]
    args += ["--out", str(out), "--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu"]
    args += ["--image-size", str(TEST_IMAGE_SIZE), "--instances", "watershed"]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    labels = {stem: read_image(out / f"{stem}_labels.png") for stem in STEMS}
    for suffix in ("tif", "csv"):
        (out / f"no_objects_objects.{suffix}").unlink()
    (out / "no_labels_labels.png").unlink()
    cut = out / "cut_short_labels.png"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    return args, out, labels


def owed(out, stem):
    return [out / f"{stem}_labels.png", out / f"{stem}_objects.tif", out / f"{stem}_objects.csv"]


def snapshot(out, stem):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in owed(out, stem)}


@pytest.mark.parametrize("where", [[], ["--cluster", "local:2"]], ids=["one process", "local cluster"])
def test_resume_completes_every_half_written_target(crashed, capsys, where):
    args, out, labels = crashed
    finished = snapshot(out, "done")
    code = main([*args, *where, "--resume"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert snapshot(out, "done") == finished  # not rewritten
    for stem in STEMS:
        np.testing.assert_array_equal(read_image(out / f"{stem}_labels.png"), labels[stem])
        objects = read_image(out / f"{stem}_objects.tif")
        table = pd.read_csv(out / f"{stem}_objects.csv")
        assert objects.shape == labels[stem].shape
        assert sorted(table["label"]) == sorted(set(np.unique(objects)) - {0})
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files


def test_without_resume_nothing_is_replaced(crashed, capsys):
    args, out, _ = crashed
    finished = snapshot(out, "done")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exist" in err and "--resume" in err and "--overwrite" in err
    assert snapshot(out, "done") == finished
    assert not (out / "no_labels_labels.png").exists()
