"""Large targets on disk: zarr, OME-Zarr and TIFF read lazily; labels streamed to OME-Zarr or BigTIFF."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import tifffile
import zarr

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.label_stores import LabelsOutput, is_complete_output
from napari_sansa.files.lazy_inputs import open_lazy


def write_ome_zarr(path, data, axes="cyx", version="0.5", chunks=128):
    """An OME-Zarr image with two levels, written by ome-zarr's own writer."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    chunk_shape = tuple(chunks if a in "yx" else 1 for a in axes)
    write_image(data, group, scale_factors=(2,), axes=axes, fmt=fmt, storage_options={"chunks": chunk_shape})
    return path


def mosaic(samples, rows=2, cols=2):
    """A larger uint8 RGB image made of sample pictures (objects the model has seen)."""
    return np.block([[[samples[(i * cols + j) % len(samples)][0]] for j in range(cols)] for i in range(rows)])


def blocks(shape=(600, 700), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.kron(rng.integers(0, 3, (shape[0] // 50 + 1, shape[1] // 50 + 1)), np.ones((50, 50)))
    return labels[: shape[0], : shape[1]].astype(np.uint8)


# ---------------------------------------------------------------------------------- inputs
def test_zarr_array_and_group_with_one_array_open_lazily(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    zarr.create_array(str(tmp_path / "plain.zarr"), data=data, chunks=(100, 100, 3))
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("image", data=data, chunks=(100, 100, 3))
    for name in ("plain.zarr", "group.zarr"):
        target = open_lazy(tmp_path / name)
        assert target.kind == "zarr" and target.hw == (300, 400) and target.channel_axis is None
        assert isinstance(target.levels[0], zarr.Array)  # nothing read: the engine slices it
        np.testing.assert_array_equal(target.levels[0][50:120, 10:20], data[50:120, 10:20])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_opens_as_a_lazy_pyramid_with_its_channel_axis(tmp_path, version):
    from napari_sansa.engine.inputs.images import Multiscale

    data = np.random.default_rng(1).integers(0, 255, (2, 600, 700), np.uint8)
    path = write_ome_zarr(tmp_path / "img.ome.zarr", data, version=version)
    target = open_lazy(path)
    image = target.image()
    assert isinstance(image, Multiscale) and image.channel_axis == 0
    assert [level.shape for level in image.levels] == [(2, 600, 700), (2, 300, 350)]
    assert target.hw == (600, 700) and target.zarr_format == (2 if version == "0.4" else 3)
    np.testing.assert_array_equal(image.levels[0][:, 100:130, 200:260], data[:, 100:130, 200:260])


def test_singleton_time_and_z_axes_are_dropped_lazily(tmp_path):
    data = np.random.default_rng(2).integers(0, 255, (1, 3, 1, 400, 500), np.uint8)
    target = open_lazy(write_ome_zarr(tmp_path / "tczyx.ome.zarr", data, axes="tczyx"))
    level = target.levels[0]
    assert level.shape == (3, 400, 500) and target.channel_axis == 0 and target.hw == (400, 500)
    np.testing.assert_array_equal(level[:, 10:50, 20:30], data[0, :, 0, 10:50, 20:30])
    np.testing.assert_array_equal(level[1], data[0, 1, 0])


def test_a_stack_of_planes_is_refused_with_a_clear_message(tmp_path):
    data = np.zeros((3, 1, 200, 200), np.uint8)
    path = write_ome_zarr(tmp_path / "movie.ome.zarr", data, axes="tzyx")
    with pytest.raises(SansaError, match="3 time points"):
        open_lazy(path)


def test_a_store_without_multiscales_names_the_array_inside(tmp_path):
    group = zarr.open_group(str(tmp_path / "bare.ome.zarr"), mode="w")
    group.create_array("0", data=np.zeros((300, 300), np.uint8))
    with pytest.raises(SansaError, match="no OME-Zarr multiscales metadata") as error:
        open_lazy(tmp_path / "bare.ome.zarr")
    assert str(tmp_path / "bare.ome.zarr" / "0") in str(error.value)
    assert open_lazy(tmp_path / "bare.ome.zarr" / "0").hw == (300, 300)  # the suggested path works


def test_pyramidal_tiff_levels_are_read_by_region(tmp_path):
    from napari_sansa.engine.inputs.images import Multiscale

    data = np.random.default_rng(3).integers(0, 2**16, (700, 900), np.uint16)
    with tifffile.TiffWriter(tmp_path / "big.tif", bigtiff=True) as tif:
        tif.write(data, subifds=1, tile=(256, 256))
        tif.write(data[::2, ::2], subfiletype=1, tile=(256, 256))
    target = open_lazy(tmp_path / "big.tif")
    image = target.image()
    assert isinstance(image, Multiscale) and [lv.shape for lv in image.levels] == [(700, 900), (350, 450)]
    np.testing.assert_array_equal(image.levels[0][600:700, 800:900], data[600:700, 800:900])
    np.testing.assert_array_equal(image.levels[1][:10, :10], data[::2, ::2][:10, :10])
    target.close()


# ---------------------------------------------------------------------------------- outputs
def write_in_bands(output, labels, band=97):
    array = output.create(labels.shape, labels.dtype)
    for top in range(0, labels.shape[0], band):  # as the engine does: full-width bands of rows
        array[top : top + band, :] = labels[top : top + band]
    return array


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_beside_an_ome_zarr_image_are_read_by_ome_zarr(tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    data = np.random.default_rng(4).integers(0, 255, (3, 600, 700), np.uint8)
    path = write_ome_zarr(tmp_path / "img.ome.zarr", data, version=version)
    labels = blocks((600, 700))
    output = LabelsOutput(path / "labels" / "sansa", "ome-zarr", image=open_lazy(path))
    output.finish(write_in_bands(output, labels))
    assert not output.partial.exists() and is_complete_output(output.final)

    nodes = list(Reader(parse_url(str(path / "labels" / "sansa")))())
    label = next(n for n in nodes if n.load(Label))
    assert [tuple(d.shape) for d in label.data] == [(1, 600, 700), (1, 300, 350)]  # the image's axes
    np.testing.assert_array_equal(np.asarray(label.data[0])[0], labels)
    np.testing.assert_array_equal(np.asarray(label.data[1])[0], labels[::2, ::2])  # exact label values
    root = zarr.open_group(str(path / "labels"), mode="r").attrs.asdict()
    assert root.get("ome", root)["labels"] == ["sansa"]
    image_nodes = list(Reader(parse_url(str(path)))())
    assert any(n.load(Label) for n in image_nodes)  # found from the image, as napari-ome-zarr does
    validated = [type(validate(p)).__name__ for p in (path, path / "labels", path / "labels" / "sansa")]
    assert validated == ["Image", "Labels", "ImageLabel"]  # the OME-NGFF models of the spec's version


def validate(path):
    """The OME-NGFF spec's model of a group (ome-zarr-models; raises if the metadata is invalid)."""
    from ome_zarr_models import open_ome_zarr

    return open_ome_zarr(zarr.open_group(str(path), mode="r"))


def test_a_new_labels_store_gets_a_pyramid(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    labels = blocks((1100, 900))
    output = LabelsOutput(tmp_path / "big_labels.ome.zarr", "ome-zarr", chunk=256)
    output.finish(write_in_bands(output, labels))
    node = next(n for n in Reader(parse_url(str(output.final)))() if n.load(Label))
    assert [tuple(d.shape) for d in node.data] == [(1100, 900), (550, 450), (275, 225)]
    np.testing.assert_array_equal(np.asarray(node.data[2]), labels[::4, ::4])
    assert type(validate(output.final)).__name__ == "ImageLabel"
    assert zarr.open_array(str(output.final / "0"), mode="r").chunks == (256, 256)


def test_labels_of_a_small_target_are_written_too(tmp_path):
    labels = blocks((200, 300))
    output = LabelsOutput(tmp_path / "small_labels.ome.zarr", "ome-zarr")
    output.finish(labels)  # not tiled: the engine gave an array in memory
    np.testing.assert_array_equal(zarr.open_array(str(output.final / "0"), mode="r")[:], labels)


def test_tiled_bigtiff_equals_the_labels(tmp_path):
    labels = blocks((700, 900)) * 100
    output = LabelsOutput(tmp_path / "big_labels.tif", "tif")
    output.finish(write_in_bands(output, labels))
    with tifffile.TiffFile(output.final) as tif:
        page = tif.pages.first
        assert tif.is_bigtiff and page.is_tiled and (page.tilelength, page.tilewidth) == (256, 256)
        np.testing.assert_array_equal(page.asarray(), labels)
    assert not output.partial.exists() and is_complete_output(output.final)
    assert [p.name for p in tmp_path.iterdir()] == ["big_labels.tif"]


def test_a_truncated_tiff_is_not_complete(tmp_path):
    output = LabelsOutput(tmp_path / "big_labels.tif", "tif")
    output.finish(write_in_bands(output, np.random.default_rng(5).integers(0, 9, (700, 900), np.uint8)))
    assert is_complete_output(output.final)
    data = output.final.read_bytes()
    output.final.write_bytes(data[: len(data) // 2])  # as a killed copy leaves it
    assert not is_complete_output(output.final)


def test_labels_with_unreadable_tiles_stay_partial(tmp_path):
    labels = blocks((600, 700))
    output = LabelsOutput(tmp_path / "x_labels.ome.zarr", "ome-zarr")
    output.finish(write_in_bands(output, labels), missing=((slice(0, 256), slice(0, 256)),))
    assert not output.final.exists() and output.partial.is_dir()
    assert not is_complete_output(output.partial) and not is_complete_output(output.final)
    assert zarr.open_group(str(output.partial), mode="r").attrs["napari-sansa"]["complete"] is False
    output.finish(write_in_bands(output, labels))  # done again (--resume): complete, partial gone
    assert is_complete_output(output.final) and not output.partial.exists()


def test_an_overwritten_output_is_replaced_whole(tmp_path):
    first, second = blocks((600, 700), seed=1), blocks((600, 700), seed=2)
    for labels in (first, second):
        output = LabelsOutput(tmp_path / "x_labels.ome.zarr", "ome-zarr")
        output.finish(write_in_bands(output, labels))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "x_labels.ome.zarr" / "0"))[:], second)
    assert [p.name for p in tmp_path.iterdir()] == ["x_labels.ome.zarr"]


def full_disk_after(monkeypatch, writes):
    """Zarr's local store fails with ENOSPC after ``writes`` writes."""
    from zarr.storage import LocalStore

    original = LocalStore.set
    count = [0]

    async def set_(self, key, value):
        count[0] += 1
        if count[0] > writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await original(self, key, value)

    monkeypatch.setattr(LocalStore, "set", set_)


def test_a_full_disk_while_streaming_removes_the_partial_output(tmp_path, monkeypatch):
    labels = blocks((1100, 900)) + 1
    output = LabelsOutput(tmp_path / "x_labels.ome.zarr", "ome-zarr", chunk=256)
    full_disk_after(monkeypatch, 6)
    with pytest.raises(SansaError, match="disk is full"):
        write_in_bands(output, labels)
    with pytest.raises(SansaError, match="disk is full"):
        output.finish(output.level0)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_writing_the_tiff_leaves_nothing(tmp_path, monkeypatch):
    output = LabelsOutput(tmp_path / "x_labels.tif", "tif")
    array = write_in_bands(output, blocks((600, 700)))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full)
    with pytest.raises(SansaError, match="No space left on device"):
        output.finish(array)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- engine
def test_lazy_inputs_give_the_same_labels_as_the_pixels_in_memory(model, samples, tmp_path):
    from napari_sansa import Mask, Reference
    from napari_sansa.engine.inputs.images import Multiscale

    image = np.ascontiguousarray(mosaic(samples[1:], 2, 2)[:300, :460])  # 2 tiles of 320 px
    cyx = np.moveaxis(image, -1, 0)
    zarr.create_array(str(tmp_path / "plain.zarr"), data=image, chunks=(128, 128, 3))
    write_ome_zarr(tmp_path / "img.ome.zarr", cyx)
    with tifffile.TiffWriter(tmp_path / "img.tif", bigtiff=True) as tif:
        tif.write(image, tile=(128, 128), photometric="rgb")
    reference = Reference(samples[0][0], {1: Mask(samples[0][1] == 1)})
    options = dict(tile_size=320, overlap=32)

    in_memory = next(iter(model.propagate(reference, [image], **options)))
    assert in_memory.tiles == 2 and np.asarray(in_memory.labels).any()
    lazy = [open_lazy(tmp_path / name) for name in ("plain.zarr", "img.tif", "img.ome.zarr")]
    assert isinstance(lazy[2].image(), Multiscale)
    for result in model.propagate(reference, [t.image() for t in lazy], **options):
        assert result.tiles == 2
        np.testing.assert_array_equal(np.asarray(result.labels), np.asarray(in_memory.labels))
