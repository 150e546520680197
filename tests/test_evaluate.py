"""``napari-sansa evaluate`` and leave-one-out: scores of what was written, against the truth."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

import napari_sansa as ns
from napari_sansa.cli.main import main
from napari_sansa.files.images import read_image
from napari_sansa.files.truth import read_truth

pytestmark = pytest.mark.usefixtures("load_once")


def model_args(checkpoints):
    sam2, adapter = checkpoints
    return ["--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu", "--image-size", "256"]


@pytest.fixture
def files(tmp_path, samples):
    """A reference, three targets, and the truth of two of them (one named ``<stem>_mask``)."""
    folders = {name: tmp_path / name for name in ("refs", "targets", "truth")}
    for folder in folders.values():
        folder.mkdir()
    iio.imwrite(folders["refs"] / "ref.png", samples[0][0])
    iio.imwrite(folders["refs"] / "ref_mask.png", samples[0][1])
    for i in range(1, 4):
        iio.imwrite(folders["targets"] / f"cell{i}.png", samples[i][0])
    iio.imwrite(folders["truth"] / "cell1.png", samples[1][1])
    iio.imwrite(folders["truth"] / "cell2_mask.png", samples[2][1])
    return folders


def evaluate(files, truth, out, checkpoints, *options):
    """``napari-sansa evaluate`` of the target folder with the one reference."""
    reference = f"{files['refs'] / 'ref.png'}:{files['refs'] / 'ref_mask.png'}"
    args = ["evaluate", "-r", reference, "--truth", str(truth), str(files["targets"]), "--out", str(out)]
    return main(args + [*options, *model_args(checkpoints)])


def test_scores_csv_holds_the_scores_of_the_label_files_written(files, checkpoints, tmp_path, capsys):
    out = tmp_path / "out"
    code = evaluate(files, files["truth"], out, checkpoints, "--instances", "watershed")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no truth for cell3.png" in captured.err  # said, segmented, not scored
    assert (out / "cell3_labels.png").exists()
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["image", "class", "iou", "dice", "true_pixels", "predicted_pixels"]
    assert sorted(set(scores["image"])) == ["cell1.png", "cell2.png"]
    for image, truth_file in (("cell1", "cell1.png"), ("cell2", "cell2_mask.png")):
        written = read_image(out / f"{image}_labels.png")
        truth = read_image(files["truth"] / truth_file)
        expected = ns.score_classes(written, truth)
        got = scores[scores["image"] == f"{image}.png"].drop(columns="image").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        objects = pd.read_csv(out / "object_scores.csv")
        expected = ns.score_objects(
            read_image(out / f"{image}_objects.tif"), read_truth(files["truth"] / truth_file).objects
        )
        got = objects[objects["image"] == f"{image}.png"].drop(columns="image").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    summary = captured.out.strip().splitlines()[-1]
    assert summary.startswith("Mean IoU over 2 image(s): class 1 ")
    assert "objects F1 at IoU 0.5" in summary


def test_a_perfect_prediction_scores_one(files, checkpoints, tmp_path, capsys, monkeypatch):
    """Predictions replaced by the truth itself: every IoU is 1 (the plumbing, not the model)."""
    from napari_sansa.engine.model import Sansa
    from napari_sansa.engine.runs.results import Prediction

    truths = {
        iio.imread(files["targets"] / f"cell{i}.png").tobytes(): iio.imread(files["truth"] / name)
        for i, name in ((1, "cell1.png"), (2, "cell2_mask.png"))
    }

    def propagate(self, references, targets, **options):
        for i, image in enumerate(targets):
            yield Prediction(i, truths.get(np.asarray(image).tobytes(), np.zeros(image.shape[:2], np.uint8)))

    monkeypatch.setattr(Sansa, "propagate", propagate)
    out = tmp_path / "out"
    code = evaluate(files, files["truth"], out, checkpoints)
    assert code == 0, capsys.readouterr().err
    scores = pd.read_csv(out / "scores.csv")
    assert (scores["iou"] == 1).all() and (scores["dice"] == 1).all()
    assert "class 1 1.000" in capsys.readouterr().out


def test_without_any_truth_says_where_it_looked(files, checkpoints, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = evaluate(files, empty, tmp_path / "o", checkpoints)
    err = capsys.readouterr().err
    assert code == 2
    assert "no truth for cell1.png" in err
    assert f"No target has a truth in {empty}" in err
    assert "Traceback" not in err


def test_truth_names_and_the_target_itself(tmp_path):
    from napari_sansa.files.truth import TruthFolder

    for name in ("a.png", "b_labels.tif", "c_masks.png", "d.tif"):
        iio.imwrite(tmp_path / name, np.zeros((4, 4), np.uint8))
    truth = TruthFolder(tmp_path)
    assert truth.find(tmp_path / "other" / "a.png") == tmp_path / "a.png"
    assert truth.find(tmp_path / "other" / "b.png") == tmp_path / "b_labels.tif"
    assert truth.find(tmp_path / "other" / "c.jpg") == tmp_path / "c_masks.png"
    assert truth.find(tmp_path / "d.tif") is None  # a target in the truth folder is not its own truth
    assert truth.find(tmp_path / "e.png") is None


def reference_set(tmp_path, samples, count=3):
    references = []
    for image, labels in samples[:count]:
        classes = ns.classes_from_mask(labels).classes
        references.append(ns.Reference(image, {c: ns.Mask(m) for c, m in classes.items()}))
    references.append(ns.Reference(samples[count][0], {1: ns.Points([[40, 40]])}))  # no mask: not scored
    sources = [{"image": f"plate_{i}.tif"} for i in range(count)] + [{"image": "clicked.tif"}]
    ns.save_references(tmp_path / "set", references, {1: "nucleus"}, sources=sources)
    return tmp_path / "set"


def test_leave_one_out_scores_each_mask_reference_against_its_mask(tmp_path, samples, checkpoints, capsys):
    folder = reference_set(tmp_path, samples)
    out = tmp_path / "loo"
    code = main(
        ["evaluate", "--references", str(folder), "--leave-one-out", "--out", str(out)]
        + model_args(checkpoints)
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores["image"].unique()) == [
        "plate_0",
        "plate_1",
        "plate_2",
    ]  # one row set per mask reference
    for i in range(3):
        labels = read_image(out / f"plate_{i}_labels.tif")
        expected = ns.score_classes(np.where(np.isin(labels, [1, 2]), labels, 0), samples[i][1], [1, 2])
        got = scores[scores["image"] == f"plate_{i}"].drop(columns="image").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert "class 1 (nucleus)" in captured.out


def test_leave_one_out_yields_one_result_per_mask_reference_and_stops_when_cancelled(fresh_model, samples):
    from napari_sansa.engine.evaluation.leave_one_out import leave_one_out

    references = [ns.Reference(image, {1: ns.Mask(labels > 0)}) for image, labels in samples[:3]]
    references.insert(1, ns.Reference(samples[3][0], {1: ns.Box(10, 10, 60, 60)}))
    results = list(leave_one_out(fresh_model, references, instances="watershed"))
    assert [r.index for r in results] == [0, 2, 3]
    for r in results:
        assert r.classes["class"].tolist() == [1]
        np.testing.assert_array_equal(r.truth, (references[r.index].prompts[1].mask).astype(np.int32))
        assert r.objects["threshold"].tolist() == [0.5, 0.75, 0.9]
    calls = []
    stopped = list(
        leave_one_out(fresh_model, references, cancel=lambda: bool(calls.append(1)) or len(calls) > 1)
    )
    assert len(stopped) <= 1


def test_leave_one_out_needs_a_mask_and_another_reference(fresh_model, samples):
    from napari_sansa.engine.evaluation.leave_one_out import leave_one_out

    with pytest.raises(ns.SansaError, match="at least two"):
        list(leave_one_out(fresh_model, [ns.Reference(samples[0][0], {1: ns.Mask(samples[0][1] > 0)})]))
    with pytest.raises(ns.SansaError, match="mask"):
        list(leave_one_out(fresh_model, [ns.Reference(samples[0][0], {1: ns.Box(1, 1, 9, 9)})] * 2))
