"""Results for other tools: QuPath GeoJSON and COCO, read back with plain json and shapely."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import shape
from skimage.draw import disk

from napari_sansa.files.coco import CocoWriter
from napari_sansa.files.geojson import write_geojson
from napari_sansa.files.polygons import label_regions


def objects_image():
    """Instance labels: discs (one with a hole), a ring, two objects touching, one across tiles."""
    labels = np.zeros((120, 150), np.int32)
    for label, (r, c, radius) in enumerate([(20, 20, 12), (30, 70, 15), (80, 40, 25), (90, 110, 20)], 1):
        rr, cc = disk((r, c), radius, shape=labels.shape)
        labels[rr, cc] = label
    labels[75:85, 35:45] = 0  # a hole in object 3
    labels[5:15, 100:140] = 5
    labels[15:25, 100:140] = 6  # touches object 5 along an edge
    return labels


def pixel_edges_match(geometry, mask):
    """Polygon area equals the pixel count within a pixel's width (perimeter / 2)."""
    return abs(geometry.area - mask.sum()) <= geometry.length / 2


@pytest.mark.parametrize("tile, offset", [(2048, 0), (32, 0), (17, 0), (40, 10**9)])
def test_one_feature_per_object_areas_bboxes_and_holes_whatever_the_tiles(tmp_path, tile, offset):
    labels = objects_image()
    labels[labels > 0] += offset  # ids of a billion are traced as well as small ones
    classes = {1 + offset: 1, 2 + offset: 1, 3 + offset: 2, 4 + offset: 2, 5 + offset: 1, 6 + offset: 2}
    path = write_geojson(
        tmp_path / "x_objects.geojson",
        label_regions(labels, instances=True, classes=classes, tile=tile),
        {1: "nucleus", 2: "cell"},
        instances=True,
    )
    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection"
    features = document["features"]
    assert sorted(f["properties"]["label"] for f in features) == sorted(classes)
    for f in features:
        label = f["properties"]["label"]
        mask = labels == label
        geometry = shape(f["geometry"])
        assert geometry.is_valid and pixel_edges_match(geometry, mask)
        assert geometry.area == mask.sum()  # pixel edges: exact
        rows, cols = np.nonzero(mask)
        assert geometry.bounds == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert f["properties"]["objectType"] == "detection"
        name = {1: "nucleus", 2: "cell"}[classes[label]]
        assert f["properties"]["classification"]["name"] == name
        assert len(f["properties"]["classification"]["color"]) == 3
    (hole,) = [f for f in features if f["properties"]["label"] == 3 + offset]
    assert hole["geometry"]["type"] == "Polygon" and len(hole["geometry"]["coordinates"]) == 2


def test_class_regions_are_annotations_one_per_connected_region(tmp_path):
    labels = np.zeros((60, 80), np.uint8)
    labels[5:20, 5:30] = 1
    labels[30:50, 10:70] = 1  # a second region of class 1
    labels[35:45, 20:30] = 2  # inside it: class 2, a hole in the class-1 region
    regions = list(label_regions(labels, tile=16))
    path = write_geojson(tmp_path / "c_objects.geojson", regions, {1: "tissue"}, instances=False)
    features = json.loads(path.read_text())["features"]
    assert sorted(
        (f["properties"]["classification"]["name"], shape(f["geometry"]).area) for f in features
    ) == [
        ("Class 2", 100.0),
        ("tissue", 375.0),
        ("tissue", 1100.0),
    ]
    assert {f["properties"]["objectType"] for f in features} == {"annotation"}
    big = next(shape(f["geometry"]) for f in features if shape(f["geometry"]).area == 1100)
    assert len(big.interiors) == 1


def test_coco_has_one_annotation_per_object_with_exact_bboxes_and_rle_for_holes(tmp_path):
    labels = objects_image()
    classes = {1: 1, 2: 1, 3: 2, 4: 2, 5: 1, 6: 2}
    writer = CocoWriter({1: "nucleus", 2: "cell"}, [1, 2])
    writer.add("x.png", labels.shape, label_regions(labels, instances=True, classes=classes, tile=40))
    document = json.loads(writer.write(tmp_path / "coco.json").read_text())
    assert document["images"] == [{"id": 1, "file_name": "x.png", "width": 150, "height": 120}]
    assert document["categories"] == [
        {"id": 1, "name": "nucleus", "supercategory": "object"},
        {"id": 2, "name": "cell", "supercategory": "object"},
    ]
    annotations = document["annotations"]
    assert len(annotations) == 6 and len({a["id"] for a in annotations}) == 6
    for a in annotations:
        assert a["image_id"] == 1 and a["iscrowd"] == 0
        segmentation = a["segmentation"]
        if isinstance(segmentation, dict):  # RLE, column-major: the object with a hole
            counts = np.array(segmentation["counts"])
            flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
            mask = flat.reshape(150, 120).T
            label = labels[mask][0]
            np.testing.assert_array_equal(mask, labels == label)
            assert label == 3
        else:
            polygon = shapely.Polygon(np.reshape(segmentation[0], (-1, 2)))
            label = labels[int(polygon.representative_point().y), int(polygon.representative_point().x)]
            mask = labels == label
            assert polygon.area == mask.sum()
        rows, cols = np.nonzero(mask)
        assert a["area"] == mask.sum()
        assert a["bbox"] == [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
        assert a["category_id"] == classes[label]


# ---------------------------------------------------------------- from the command line


def cli(tmp_path, checkpoints, capsys, targets, *options):
    from test_cli_large import segment

    return segment(tmp_path, checkpoints, capsys, *targets, options=options)


@pytest.fixture
def files(tmp_path, samples):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "ref.png", samples[0][0])
    iio.imwrite(tmp_path / "ref_mask.png", samples[0][1])
    iio.imwrite(tmp_path / "cell0.png", samples[1][0])
    iio.imwrite(tmp_path / "cell1.png", samples[2][0])
    return tmp_path


@pytest.mark.usefixtures("load_once")
def test_segment_exports_geojson_and_coco_of_its_objects(files, checkpoints, capsys):
    import pandas as pd
    import tifffile

    targets = [files / "cell0.png", files / "cell1.png"]
    options = ["--instances", "watershed", "--export", "geojson,coco", "--class-name", "1=nucleus"]
    code, err = cli(files, checkpoints, capsys, targets, *options)
    assert code == 0, err
    out = files / "out"
    coco = json.loads((out / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["cell0.png", "cell1.png"]
    assert {c["id"]: c["name"] for c in coco["categories"]} == {1: "nucleus", 2: "Class 2"}
    for image in coco["images"]:
        stem = image["file_name"][:-4]
        objects = tifffile.imread(out / f"{stem}_objects.tif")
        table = pd.read_csv(out / f"{stem}_objects.csv")
        features = json.loads((out / f"{stem}_objects.geojson").read_text())["features"]
        annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert len(features) == len(annotations) == len(table) > 0
        assert (image["height"], image["width"]) == objects.shape
        areas = dict(zip(table["label"], table["area"]))
        for f in features:
            assert shape(f["geometry"]).area == areas[f["properties"]["label"]]
        assert sorted(a["area"] for a in annotations) == sorted(table["area"])

    code, err = cli(files, checkpoints, capsys, targets, "--export", "coco")
    assert code == 2 and "already exists" in err
    (out / "cell1_objects.geojson").unlink()
    code, err = cli(files, checkpoints, capsys, targets, *options, "--resume")  # all done: read back
    assert code == 0 and "2 of 2 label images are complete" in err
    assert json.loads((out / "coco.json").read_text()) == coco
    assert len(json.loads((out / "cell1_objects.geojson").read_text())["features"]) > 0
    code, err = cli(files, checkpoints, capsys, targets, "--export", "shapefile")
    assert code == 2 and "'shapefile' is not a format; use geojson or coco" in err


@pytest.mark.usefixtures("load_once")
def test_a_tiled_target_streams_one_feature_per_region_across_tile_borders(
    files, checkpoints, capsys, samples
):
    import tifffile

    from test_large_files import mosaic

    image = np.ascontiguousarray(mosaic(samples[1:], 2, 2)[:300, :460])
    tifffile.imwrite(files / "big.tif", image, photometric="rgb", tile=(128, 128))
    options = ["--tile-size", "320", "--overlap", "32", "--format", "tif", "--export", "geojson"]
    code, err = cli(files, checkpoints, capsys, [files / "big.tif"], *options)
    assert code == 0, err
    labels = tifffile.imread(files / "out" / "big_labels.tif")
    features = json.loads((files / "out" / "big_objects.geojson").read_text())["features"]
    expected = sorted((r.class_id, r.geometry.area) for r in label_regions(labels))  # in memory, one tile
    assert len(expected) > 1
    assert sorted((f["properties"]["class_id"], shape(f["geometry"]).area) for f in features) == expected


def test_export_is_refused_on_a_cluster_in_one_line(files, checkpoints, capsys):
    options = ["--cluster", "local:1", "--export", "geojson"]
    code, err = cli(files, checkpoints, capsys, [files / "cell0.png"], *options)
    assert code == 2 and "--export applies to runs without --cluster" in err
