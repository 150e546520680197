"""Reference sets: saved, loaded elsewhere, and checked like any file from a stranger."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile

import napari_sansa as ns
from napari_sansa import SansaError


@pytest.fixture
def references(samples):
    image0, labels0 = samples[0]
    image1 = samples[1][0][..., 0].astype(np.uint16) * 50
    return [
        ns.Reference(ns.Image(image0), {1: ns.Mask(labels0 == 1), 2: ns.Mask(labels0 == 2)}),
        ns.Reference(
            ns.Image(image1, contrast_limits=(100.0, 9000.0)),
            {
                1: [ns.Box(10, 20, 90, 120), ns.Points([[40, 50], [5, 5]], labels=[1, 0])],
                3: ns.Scribble([[30, 30], [60, 90], [40, 150]], positive=True),
            },
        ),
    ]


def saved(tmp_path, references, **kwargs):
    return ns.save_references(tmp_path / "set", references, {1: "nucleus", 3: "debris"}, **kwargs)


def edit(tmp_path, change):
    """Change the saved references.json with ``change(document)``."""
    path = tmp_path / "set" / "references.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_a_set_round_trips_every_prompt_type_names_and_display_settings(tmp_path, references):
    path = saved(
        tmp_path,
        references,
        model={"name": "universal", "sam2_size": "large"},
        settings={"image_size": 512, "precision": "bf16"},
        sources=[{"image": "cells 0", "plane": []}, {"image": "stack", "plane": [3]}],
    )
    assert path == tmp_path / "set" / "references.json"
    document = json.loads(path.read_text())
    assert document["format"] == "napari-sansa references" and document["format_version"] == 1
    loaded = ns.read_reference_set(tmp_path / "set")
    assert loaded.class_names == {1: "nucleus", 3: "debris"}
    assert loaded.model == {"name": "universal", "sam2_size": "large"}
    assert loaded.settings == {"image_size": 512, "precision": "bf16"}
    assert loaded.sources == [{"image": "cells 0", "plane": []}, {"image": "stack", "plane": [3]}]
    first, second = loaded.references
    np.testing.assert_array_equal(first.image.data, references[0].image.data)
    np.testing.assert_array_equal(first.prompts[2][0].mask, references[0].prompts[2].mask)
    assert second.image.data.dtype == np.uint16 and second.image.contrast_limits == (100.0, 9000.0)
    box, points = second.prompts[1]
    assert (box.r0, box.c0, box.r1, box.c1) == (10, 20, 90, 120)
    np.testing.assert_array_equal(points.coords, [[40, 50], [5, 5]])
    assert list(points.labels) == [1, 0]
    np.testing.assert_array_equal(second.prompts[3][0].path, [[30, 30], [60, 90], [40, 150]])
    assert len(ns.load_references(path)) == 2  # the file works as well as its folder


def test_a_set_is_written_with_the_users_umask(tmp_path, references):
    old = os.umask(0o027)
    try:
        saved(tmp_path, references)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "set").rglob("*") if p.is_file()]
    assert len(files) == 5  # json, 2 images, 2 masks
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o640)}


def test_existing_sets_and_other_folders_are_never_written_over_without_asking(tmp_path, references):
    saved(tmp_path, references)
    with pytest.raises(SansaError, match="already exists"):
        saved(tmp_path, references)
    saved(tmp_path, references[1:], overwrite=True)
    assert len(ns.load_references(tmp_path / "set")) == 1
    assert sorted(p.name for p in (tmp_path / "set" / "images").iterdir()) == ["ref_000.tif"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(SansaError, match="not a reference set"):
        ns.save_references(other, references, overwrite=True)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_a_reference_that_could_not_run_is_not_saved(tmp_path, samples):
    image = samples[0][0]
    bad = ns.Reference(image, {1: ns.Mask(np.zeros((10, 10), bool))})
    with pytest.raises(SansaError, match="shape"):
        ns.save_references(tmp_path / "set", [bad])
    assert not (tmp_path / "set").exists()


def _set_version(doc):
    doc["format_version"] = 2


def _outside(doc):
    doc["references"][0]["image"] = "../secret.tif"


def _absolute(doc):
    doc["references"][0]["prompts"]["1"][0]["file"] = "/etc/passwd"


def _small_mask(doc):
    doc["references"][0]["prompts"]["1"][0]["file"] = "masks/small.tif"


def _text_limits(doc):
    doc["references"][1]["contrast_limits"] = ["0", "1"]


def _format(doc):
    doc["format"] = "something else"


def _class_zero(doc):
    doc["references"][0]["prompts"]["0"] = doc["references"][0]["prompts"].pop("1")


def _huge_class(doc):
    doc["references"][0]["prompts"][str(2**62)] = doc["references"][0]["prompts"].pop("1")


def _huge_class_name(doc):
    doc["class_names"] = {str(2**62): "giant"}


@pytest.mark.parametrize(
    "change, message",
    [
        (_format, "not a napari-sansa reference set"),
        (_set_version, "newer napari-sansa"),
        (_outside, "outside its folder"),
        (_absolute, "outside its folder"),
        (_small_mask, r"shape \(10, 10\), but its image is 256x320"),
        (_text_limits, "numbers only"),
        (_class_zero, "bad class"),
        (_huge_class, "class 4611686018427387904, beyond the largest id label files hold"),
        (_huge_class_name, "class 4611686018427387904, beyond the largest id"),
    ],
    ids=[
        "format",
        "newer-version",
        "dotdot",
        "absolute",
        "mask-size",
        "text-numbers",
        "class-0",
        "class-2^62",
        "name-2^62",
    ],
)
def test_damaged_sets_are_refused_with_a_reason(tmp_path, references, change, message):
    saved(tmp_path, references)
    (tmp_path / "secret.tif").write_bytes(b"x")
    tifffile.imwrite(tmp_path / "set" / "masks" / "small.tif", np.ones((10, 10), np.uint8))
    edit(tmp_path, change)
    with pytest.raises(SansaError, match=message):
        ns.load_references(tmp_path / "set")


def test_json_nested_100000_deep_is_refused_in_one_line(tmp_path, references):
    saved(tmp_path, references)
    (tmp_path / "set" / "references.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SansaError, match="nested too deeply"):
        ns.load_references(tmp_path / "set")


def test_class_ids_beyond_what_label_files_hold_are_refused_before_a_run(samples):
    image, labels = samples[0]
    giant = ns.Reference(ns.Image(image), {2**62: ns.Mask(labels == 1)})
    with pytest.raises(SansaError, match="too large: label files hold ids up to 4294967295"):
        ns.save_references("unused", [giant])


def test_a_missing_file_or_a_folder_that_is_no_set_is_named(tmp_path, references):
    saved(tmp_path, references)
    (tmp_path / "set" / "images" / "ref_001.tif").unlink()
    with pytest.raises(SansaError, match="ref_001.tif is missing"):
        ns.load_references(tmp_path / "set")
    with pytest.raises(SansaError, match="holds no references.json"):
        ns.load_references(tmp_path)


def test_an_old_run_record_says_why_it_is_no_reference_set(tmp_path):
    record = {"format": "napari-sansa run", "model": {}, "settings": {}, "references": []}
    (tmp_path / "sansa_run.json").write_text(json.dumps(record))
    for path in (tmp_path, tmp_path / "sansa_run.json"):
        with pytest.raises(SansaError, match="names napari layers, not images.*with the images open"):
            ns.load_references(path)


def test_oversized_files_and_links_out_of_the_folder_are_refused(tmp_path, references, monkeypatch):
    from napari_sansa.files import prompts as prompt_files

    saved(tmp_path, references)
    monkeypatch.setattr(prompt_files, "MAX_ARRAY_BYTES", 1000)
    with pytest.raises(SansaError, match="would decode to"):
        ns.load_references(tmp_path / "set")
    monkeypatch.undo()
    outside = tmp_path / "elsewhere.tif"
    tifffile.imwrite(outside, np.ones((256, 320), np.uint8))
    link = tmp_path / "set" / "masks" / "ref_000_class1_0.tif"
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(SansaError, match="outside its folder"):
        ns.load_references(tmp_path / "set")
