"""The command line on large targets: zarr, OME-Zarr and big TIFF in; OME-Zarr labels or BigTIFF out."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import tifffile
import zarr

from napari_sansa.cli.main import main
from test_large_files import full_disk_after, mosaic, write_ome_zarr

TILED = ["--tile-size", "320", "--overlap", "32"]  # a 300 x 460 image: 2 tiles; the reference: 1

pytestmark = pytest.mark.usefixtures("load_once")  # every run loads the same files: once a session


@pytest.fixture
def files(tmp_path, samples):
    """A reference and its mask, a large image as OME-Zarr and as TIFF, and a small PNG."""
    import imageio.v3 as iio

    image = np.ascontiguousarray(mosaic(samples[1:], 2, 2)[:300, :460])
    iio.imwrite(tmp_path / "ref.png", samples[0][0])
    iio.imwrite(tmp_path / "ref_mask.png", samples[0][1])
    data = tmp_path / "data"
    data.mkdir()
    write_ome_zarr(data / "big.ome.zarr", np.moveaxis(image, -1, 0))
    tifffile.imwrite(data / "big.tif", image, photometric="rgb", tile=(128, 128))
    iio.imwrite(data / "small.png", samples[2][0][:200, :300])  # smaller than a tile
    return tmp_path, data


def segment(tmp_path, checkpoints, capsys, *targets, options=()):
    sam2, adapter = checkpoints
    args = ["segment", "-r", f"{tmp_path / 'ref.png'}:{tmp_path / 'ref_mask.png'}", *map(str, targets)]
    args += ["--out", str(tmp_path / "out"), "--sam2", str(sam2), "--adapter", str(adapter)]
    args += ["--device", "cpu", "--image-size", "256", *options]
    code = main(args)
    return code, capsys.readouterr().err


def level0(path):
    group = zarr.open_group(str(path), mode="r")
    attrs = group.attrs.asdict()
    multiscale = attrs.get("ome", attrs)["multiscales"][0]
    return np.asarray(group[multiscale["datasets"][0]["path"]][:]).squeeze()


def test_large_targets_get_streamed_labels_and_small_ones_todays_files(files, checkpoints, tmp_path, capsys):
    root, data = files
    code, err = segment(
        root, checkpoints, capsys, data / "big.ome.zarr", data / "big.tif", data / "small.png", options=TILED
    )
    assert code == 0, err
    out = root / "out"
    beside = data / "big.ome.zarr" / "labels" / "sansa"  # the labels group beside the image
    streamed = out / "big_labels.ome.zarr"  # a TIFF's labels: a new store in --out
    assert sorted(p.name for p in out.iterdir()) == ["big_labels.ome.zarr", "small_labels.png"]
    np.testing.assert_array_equal(level0(beside), level0(streamed))  # same pixels, same labels
    assert "tiles per image: big.ome.zarr 2, big.tif 2, small.png 1" in err
    assert f"big.ome.zarr -> {beside}" in err

    code, err = segment(
        root, checkpoints, capsys, data / "big.tif", options=[*TILED, "--format", "tif", "--overwrite"]
    )
    assert code == 0, err
    with tifffile.TiffFile(out / "big_labels.tif") as tif:
        assert tif.is_bigtiff and tif.pages.first.is_tiled
        np.testing.assert_array_equal(tif.asarray(), level0(streamed))
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_a_corrupt_chunk_is_reported_the_rest_written_and_resume_redoes_it(
    files, checkpoints, tmp_path, capsys
):
    root, data = files
    store = data / "big.ome.zarr"
    chunk = sorted(p for p in (store / "s0").rglob("*") if p.is_file() and p.name != "zarr.json")[-1]
    good = chunk.read_bytes()
    chunk.write_bytes(b"not a chunk" * 10)
    code, err = segment(root, checkpoints, capsys, store, options=TILED)
    assert code == 2
    assert "skipped: big.ome.zarr: Tile" in err and "not marked complete (--resume redoes it)" in err
    labels = store / "labels"
    assert (labels / "sansa.partial").is_dir() and not (labels / "sansa").exists()

    chunk.write_bytes(good)  # the chunk is readable again: --resume does the image again
    code, err = segment(root, checkpoints, capsys, store, options=[*TILED, "--resume"])
    assert code == 0, err
    assert "Resuming: 0 of 1 label images are complete." in err
    assert (labels / "sansa").is_dir() and not (labels / "sansa.partial").exists()
    code, err = segment(root, checkpoints, capsys, store, options=[*TILED, "--resume"])
    assert code == 0 and "Resuming: 1 of 1 label images are complete." in err


def test_a_store_without_multiscales_metadata_is_refused_in_one_line(files, checkpoints, tmp_path, capsys):
    root, data = files
    group = zarr.open_group(str(data / "bare.ome.zarr"), mode="w")
    group.create_array("0", data=np.zeros((300, 460), np.uint8))
    code, err = segment(root, checkpoints, capsys, data / "bare.ome.zarr")
    assert code == 2
    assert err.strip().count("\n") == 0 and "no OME-Zarr multiscales metadata" in err
    assert str(data / "bare.ome.zarr" / "0") in err


@pytest.mark.parametrize(
    "options, says",
    [
        (["--tile-size", "256", "--overlap", "256"], "must be smaller than the tile size"),
        (["--tile-size", "32"], "too small"),
        (["--scale", "0"], "scale must be a number > 0"),
        (["--tile-size", "big"], "--tile-size must be a number of pixels"),
    ],
)
def test_bad_tiling_options_exit_2_before_any_work(files, checkpoints, tmp_path, capsys, options, says):
    root, data = files
    code, err = segment(root, checkpoints, capsys, data / "small.png", options=options)
    assert code == 2 and says in err and err.strip().count("\n") == 0
    assert not (root / "out" / "small_labels.png").exists()


def test_a_full_disk_leaves_no_partial_labels(files, checkpoints, tmp_path, capsys, monkeypatch):
    root, data = files
    full_disk_after(monkeypatch, 3)  # the store's metadata is written, then the first chunk fails
    code, err = segment(root, checkpoints, capsys, data / "big.tif", options=TILED)
    assert code == 2 and "disk is full" in err
    assert list((root / "out").iterdir()) == []
    assert errno.ENOSPC  # the error simulated


def test_zarr_stores_and_tiling_flags_are_refused_on_a_cluster(files, checkpoints, tmp_path, capsys):
    root, data = files
    code, err = segment(root, checkpoints, capsys, data / "big.ome.zarr", options=["--cluster", "local:1"])
    assert code == 2 and "is a zarr store; segment zarr stores without --cluster" in err
    code, err = segment(root, checkpoints, capsys, data / "big.tif", options=[*TILED, "--cluster", "local:1"])
    assert code == 2 and "--tile-size, --overlap apply to runs without --cluster" in err


def test_objects_of_a_tiled_target_come_from_its_labels_on_disk(files, checkpoints, tmp_path, capsys):
    import pandas as pd
    from skimage.measure import label

    root, data = files
    code, err = segment(
        root, checkpoints, capsys, data / "big.tif", options=[*TILED, "--instances", "watershed"]
    )
    assert code == 0, err
    out = root / "out"
    classes = level0(out / "big_labels.ome.zarr")
    objects = level0(out / "big_objects.ome.zarr")
    table = pd.read_csv(out / "big_objects.csv")
    pieces = [label(classes == c, connectivity=2) for c in np.unique(classes[classes > 0])]
    expected = sum(int((np.bincount(p.ravel())[1:] >= 16).sum()) for p in pieces)  # the default min size
    assert len(table) == objects.max() == expected > 0  # no tile border cuts an object in two
    assert ((objects > 0) <= (classes > 0)).all()
    assert all((classes[objects == row.label] == row["class"]).all() for _, row in table.iterrows())
    code, err = segment(
        root, checkpoints, capsys, data / "big.tif", options=[*TILED, "--instances", "sam", "--overwrite"]
    )
    assert code == 2 and "--instances watershed" in err
