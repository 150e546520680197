"""The paper's protocol: dataset layouts, reproducible episodes, mIoU and FB-IoU as the reference counts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.metrics.fewshot import FewShotMeter, class_iou, fb_iou, mean_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fewshot  # noqa: E402
import fewshot_datasets as fd  # noqa: E402


def square(n=10, rows=slice(0, 0), cols=slice(0, 0)):
    m = np.zeros((n, n), bool)
    m[rows, cols] = True
    return m


def test_meter_sums_areas_per_class_before_dividing():
    meter = FewShotMeter()
    # class a: truth 4x4 = 16 px; predicted 4x2 inside it: intersection 8, union 16
    meter.add("a", square(rows=slice(0, 4), cols=slice(0, 2)), square(rows=slice(0, 4), cols=slice(0, 4)))
    # class a again: a perfect 2x2: 4 / 4
    meter.add("a", square(rows=slice(5, 7), cols=slice(5, 7)), square(rows=slice(5, 7), cols=slice(5, 7)))
    # class b: truth 5x2 = 10 px missed entirely, a false 1x1 predicted: 0 / 11
    meter.add("b", square(rows=slice(9, 10), cols=slice(9, 10)), square(rows=slice(0, 5), cols=slice(0, 2)))
    table = meter.frame()
    assert table["intersection"].tolist() == [8, 4, 0]
    assert table["union"].tolist() == [16, 4, 11]
    assert table["background_intersection"].tolist() == [84, 96, 89]  # 100 - union
    assert table["background_union"].tolist() == [92, 96, 100]  # 100 - intersection
    assert table["iou"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    # class a from its sums: 12 / 20 = 60 % (not the mean of the episodes' 50 % and 100 %)
    assert class_iou(table).set_index("class")["iou"].to_dict() == pytest.approx({"a": 60.0, "b": 0.0})
    assert meter.miou == pytest.approx(30.0)
    # foreground 12 / 31, background 269 / 288, over all episodes
    assert meter.fb_iou == pytest.approx(100 * (12 / 31 + 269 / 288) / 2)
    # a class of the split without episodes counts 0, as in the reference
    assert mean_iou(table, classes=["a", "b", "c"]) == pytest.approx(20.0)


def test_an_empty_union_counts_zero_not_nan():
    meter = FewShotMeter()
    meter.add("a", square(), square())
    assert meter.miou == 0.0 and fb_iou(meter.frame()) == pytest.approx(50.0)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _pair(rng, n=40):
    """A noisy image with a bright square and its mask (0/255)."""
    r, c, s = *rng.integers(4, 20, 2), int(rng.integers(8, 16))
    mask = np.zeros((n, n), np.uint8)
    mask[r : r + s, c : c + s] = 255
    image = np.clip(rng.normal(60, 10, (n, n, 3)) + 0.6 * mask[..., None], 0, 255).astype(np.uint8)
    return image, mask


def make_layout(name: str, root: Path, per_class: int = 4) -> Path:
    """A tiny dataset in ``name``'s published layout under ``root`` (the reference's ``data/``)."""
    rng = np.random.default_rng(1)
    if name == "fss1000":
        base = root / "FSS-1000"
        for cls in ("zebra", "apple", "yak"):
            for i in range(1, per_class + 1):
                image, mask = _pair(rng)
                _write(base / "data" / cls / f"{i}.jpg", image)
                _write(base / "data" / cls / f"{i}.png", mask)
        _write(base / "data" / "bee" / "1.jpg", _pair(rng)[0])  # a training class: not in the test split
        (base / "splits").mkdir()
        (base / "splits" / "test.txt").write_text("zebra\napple\nyak\n")
    elif name == "isic":
        base = root / "ISIC"
        for cls in ("1", "2", "3"):
            for i in range(per_class):
                image, mask = _pair(rng)
                _write(base / "ISIC2018_Task1-2_Training_Input" / cls / f"ISIC_{cls}{i:03d}.jpg", image)
                _write(
                    base / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_{cls}{i:03d}_segmentation.png", mask
                )
    elif name == "lung":
        base = root / "LungSegmentation"
        for i in range(per_class):
            image, mask = _pair(rng)
            stem = f"MCUCXR_{i:04d}_0" if i % 2 else f"CHNCXR_{i:04d}_0"
            _write(base / "CXR_png" / f"{stem}.png", image)
            _write(base / "masks" / (f"{stem}.png" if i % 2 else f"{stem}_mask.png"), mask)
    else:
        base = root / "Deepglobe"
        for cls in ("1", "2", "3", "4", "5", "6"):
            for i in range(per_class):
                image, mask = _pair(rng)
                _write(base / "image" / f"{cls}{i}_sat_{i}.jpg", image)
                _write(base / "filter_mask" / cls / f"{cls}{i}_mask_{i}.png", mask)
    return base


@pytest.mark.parametrize(
    ("name", "classes"),
    [
        ("fss1000", ["apple", "yak", "zebra"]),
        ("isic", ["1", "2", "3"]),
        ("lung", ["1"]),
        ("deepglobe", list("123456")),
    ],
)
def test_each_layout_is_read_with_its_images_and_masks(tmp_path, name, classes):
    make_layout(name, tmp_path)
    dataset = fd.read_dataset(name, tmp_path)  # the folder holding the dataset's folder
    assert fd.read_dataset(name, dataset.root).classes == dataset.classes  # or the folder itself
    assert dataset.class_names == classes
    for samples in dataset.classes.values():
        assert len(samples) == 4
        for sample in samples:
            assert fd.read_rgb(sample.image).shape == (40, 40, 3)
            assert 64 <= fd.read_mask(sample.mask).sum() <= 256


def test_episodes_are_reproducible_and_follow_the_protocol(tmp_path):
    make_layout("fss1000", tmp_path)
    fss = fd.read_dataset("fss1000", tmp_path)
    every = fd.episodes(fss, shots=2, seed=0)
    assert len(every) == 12  # FSS-1000: every test image a query once
    assert sorted((e.class_name, e.query.image.name) for e in every) == sorted(
        (c, f"{i}.jpg") for c in ("apple", "yak", "zebra") for i in range(1, 5)
    )
    for episode in every:
        names = [s.image for s in episode.supports]
        assert len(set(names)) == 2 and episode.query.image not in names
        assert all(s.image.parent.name == episode.class_name for s in episode.supports)
    assert fd.episodes(fss, shots=2, seed=0) == every
    assert fd.episodes(fss, shots=2, seed=1) != every
    assert len(fd.episodes(fss, count=5, seed=0)) == 5

    make_layout("isic", tmp_path)
    isic = fd.read_dataset("isic", tmp_path)
    assert len(fd.episodes(isic)) == 600  # the reference's count
    some = fd.episodes(isic, count=7, seed=3)
    assert [e.class_name for e in some] == ["1", "2", "3", "1", "2", "3", "1"]
    assert some == fd.episodes(isic, count=7, seed=3)


def test_a_missing_split_or_layout_is_one_clear_error(tmp_path):
    base = make_layout("fss1000", tmp_path)
    (base / "splits" / "test.txt").unlink()
    with pytest.raises(SansaError, match="splits/test.txt.*test.txt"):
        fd.read_dataset("fss1000", tmp_path)
    with pytest.raises(SansaError, match="filter_mask"):
        fd.read_dataset("deepglobe", tmp_path)
    with pytest.raises(SansaError, match="more than 4 images"):
        fd.episodes(fd.read_dataset("lung", make_layout("lung", tmp_path).parent), shots=4)


def _check_tables(csv: Path, printed: dict) -> None:
    episodes = pd.read_csv(csv, dtype={"class": str})
    assert len(episodes) == printed["episodes"]
    # the printed mIoU, recomputed by hand from the episode rows: per class sum, divide, mean
    sums = episodes.groupby("class")[["intersection", "union"]].sum()
    assert 100 * (sums["intersection"] / sums["union"].clip(lower=1)).mean() == pytest.approx(printed["miou"])
    fg = episodes["intersection"].sum() / episodes["union"].sum()
    bg = episodes["background_intersection"].sum() / episodes["background_union"].sum()
    assert 100 * (fg + bg) / 2 == pytest.approx(printed["fb_iou"])
    classes = pd.read_csv(csv.with_name(f"{csv.stem}_classes.csv"), dtype={"class": str})
    assert classes["iou"].mean() == pytest.approx(printed["miou"])
    assert classes["episodes"].sum() == len(episodes)


@pytest.mark.parametrize("name", ["fss1000", "isic", "lung", "deepglobe"])
def test_the_benchmark_prints_what_its_tables_hold(tmp_path, model, name):
    make_layout(name, tmp_path)
    csv = tmp_path / "episodes.csv"
    args = fewshot.parser().parse_args(
        ["--dataset", name, "--root", str(tmp_path), "--episodes", "3", "--seed", "2", "--csv", str(csv)]
    )
    lines = []
    printed = fewshot.run(args, model=model, out=lines.append)
    assert printed["episodes"] == 3
    assert f"mIoU {printed['miou']:.2f}  FB-IoU {printed['fb_iou']:.2f}" in lines[-1]
    _check_tables(csv, printed)
    # scored at the reference's 518 x 518: background and foreground cover every pixel
    table = pd.read_csv(csv)
    assert ((table["union"] + table["background_intersection"]) == 518 * 518).all()
    again = fewshot.run(args, model=model, out=lines.append)
    assert pd.read_csv(csv)["query"].tolist() == table["query"].tolist() and again == printed


def test_the_command_line_with_local_checkpoints(tmp_path, checkpoints, load_once, capsys):
    make_layout("fss1000", tmp_path)
    csv = tmp_path / "out" / "fss.csv"
    common = ["--dataset", "fss1000", "--root", str(tmp_path), "--csv", str(csv), "--score-size", "0"]
    model = ["--sam2", str(checkpoints[0]), "--adapter", str(checkpoints[1]), "--device", "cpu"]
    model += ["--image-size", "256", "--precision", "fp32"]
    assert fewshot.main([*common, "--shots", "2", "--episodes", "2", *model]) == 0
    assert "fss1000 2-shot, 2 episodes" in capsys.readouterr().out
    table = pd.read_csv(csv)
    assert ((table["union"] + table["background_intersection"]) == 40 * 40).all()  # the query's own size
    assert fewshot.main([*common, "--sam2", str(checkpoints[0])]) == 2
    assert "--adapter" in capsys.readouterr().err
