"""Microscope files in the command line: channels and Z planes of an OME-TIFF, through bioio."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_sansa.cli.main import main
from napari_sansa.files.images import read_image
from napari_sansa.files.microscope import open_planes

pytestmark = pytest.mark.usefixtures("load_once")


def write_ome(path, data, axes):
    tifffile.imwrite(path, data, ome=True, metadata={"axes": axes})
    return path


@pytest.fixture
def files(tmp_path, samples):
    """A reference (2 channels, one plane, OME-TIFF) and its mask, and a target of 3 z planes x 2 channels."""
    import imageio.v3 as iio

    channels = [np.moveaxis(samples[i][0], -1, 0)[:2] for i in range(4)]  # (2, H, W) each
    write_ome(tmp_path / "ref.ome.tif", channels[0], "CYX")
    iio.imwrite(tmp_path / "ref_mask.png", samples[0][1])
    write_ome(tmp_path / "zstack.ome.tif", np.stack(channels[1:]), "ZCYX")
    return tmp_path, channels


def test_an_ome_tiff_with_channels_and_z_is_segmented_plane_by_plane(files, checkpoints, capsys):
    folder, channels = files
    stack = open_planes(folder / "zstack.ome.tif")
    assert (stack.count, stack.axes, stack.hw) == (3, "ZYX", channels[0].shape[1:])
    np.testing.assert_array_equal(stack.plane((0, 0, 2)).data, channels[3])
    assert read_image(folder / "ref.ome.tif").shape == (*channels[0].shape[1:], 2)  # channels last

    sam2, adapter = checkpoints
    args = [
        "segment",
        "-r",
        f"{folder / 'ref.ome.tif'}:{folder / 'ref_mask.png'}",
        str(folder / "zstack.ome.tif"),
    ]
    args += ["--out", str(folder / "out"), "--sam2", str(sam2), "--adapter", str(adapter)]
    args += ["--device", "cpu", "--image-size", "256", "--instances", "watershed", "--export", "coco"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Wrote 1 label image(s)" in err
    labels = tifffile.imread(folder / "out" / "zstack.ome_labels.tif")
    assert labels.shape == (3, *channels[0].shape[1:]) and labels[1:].any()
    objects = tifffile.imread(folder / "out" / "zstack.ome_objects.tif")
    table = pd.read_csv(folder / "out" / "zstack.ome_objects.csv")
    assert objects.shape == labels.shape and list(table.columns[:2]) == ["z", "label"]
    assert sorted(table["label"]) == sorted(np.unique(objects[objects > 0]))  # ids unique in the stack
    coco = json.loads((folder / "out" / "coco.json").read_text())
    assert [(i["file_name"], i["plane"]) for i in coco["images"]] == [("zstack.ome.tif", z) for z in range(3)]
    assert len(coco["annotations"]) == len(table)


def test_a_reference_of_many_planes_or_a_format_without_its_reader_says_what_to_do(files, tmp_path):
    from napari_sansa import SansaError

    folder, _ = files
    with pytest.raises(SansaError, match="has 3 z planes; here it must be one 2D image"):
        read_image(folder / "zstack.ome.tif")
    (tmp_path / "scan.czi").write_bytes(b"not really a czi")
    with pytest.raises(SansaError, match=r'needs bioio and bioio-czi: pip install "napari-sansa\[formats\]"'):
        read_image(tmp_path / "scan.czi")
