"""The command line end to end, on files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sansa.cli.main import main

pytestmark = pytest.mark.usefixtures("load_once")  # every run loads the same files: once a session


@pytest.fixture
def dataset(tmp_path, samples):
    """A reference image + mask and a folder of targets, as files."""
    import imageio.v3 as iio

    ref_dir, target_dir = tmp_path / "refs", tmp_path / "targets"
    ref_dir.mkdir()
    target_dir.mkdir()
    iio.imwrite(ref_dir / "ref.png", samples[0][0])
    iio.imwrite(ref_dir / "ref_mask.png", samples[0][1])
    for i, (image, _) in enumerate(samples[1:3]):
        iio.imwrite(target_dir / f"cell{i}.png", image)
    tifffile.imwrite(target_dir / "stack16.tif", (samples[3][0][..., 0].astype(np.uint16) * 40))
    return ref_dir, target_dir


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


def model_args(checkpoints):
    sam2, adapter = checkpoints
    return ["--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu", "--image-size", "256"]


def test_segment_writes_one_label_image_per_target(dataset, checkpoints, tmp_path, capsys):
    ref_dir, target_dir = dataset
    out = tmp_path / "out"
    code, err = run(
        [
            "segment",
            "-r",
            f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}",
            str(target_dir),
            "--out",
            str(out),
        ]
        + model_args(checkpoints),
        capsys,
    )
    assert code == 0, err
    written = sorted(p.name for p in out.iterdir())
    assert written == ["cell0_labels.png", "cell1_labels.png", "stack16_labels.tif"]
    labels = tifffile.imread(out / "stack16_labels.tif")
    assert labels.shape == (256, 320) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2}  # the sample mask has classes 1 and 2
    assert "Wrote 3 label image(s)" in err
    assert "Estimate: about" in err


def test_memory_options_give_the_same_labels(dataset, checkpoints, tmp_path, capsys):
    ref_dir, target_dir = dataset
    outputs = []
    for options in ([], ["--memory-gb", "0", "--disk-cache-gb", "0", "--batch-size", "2"]):
        out = tmp_path / f"out{len(outputs)}"
        reference = f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}"
        args = ["segment", "-r", reference, str(target_dir), "--out", str(out), *options]
        code, err = run(args + model_args(checkpoints), capsys)
        assert code == 0, err
        outputs.append(tifffile.imread(out / "stack16_labels.tif"))
    assert (outputs[0] == outputs[1]).mean() > 0.99


def test_existing_results_are_not_overwritten(dataset, checkpoints, tmp_path, capsys):
    ref_dir, target_dir = dataset
    out = tmp_path / "out"
    out.mkdir()
    (out / "cell0_labels.png").write_bytes(b"my corrected labels")
    code, err = run(
        [
            "segment",
            "-r",
            f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}",
            str(target_dir / "cell0.png"),
            "--out",
            str(out),
        ]
        + model_args(checkpoints),
        capsys,
    )
    assert code == 2
    assert "already exists" in err and "Traceback" not in err
    assert (out / "cell0_labels.png").read_bytes() == b"my corrected labels"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-r", "nocolon.png"], "must be IMAGE:MASK"),
        (["-r", "missing.png:missing_mask.png"], "does not exist"),
        (["-r", "{ref}:{img}"], "colour image"),
        (["-r", "{ref}:{mask}", "--batch-size", "0"], "batch_size must be at least 1"),
        (["-r", "{ref}:{mask}", "--memory-gb", "-1"], "--memory-gb must be"),
        ([], "Give references"),
        (["-r", "{ref}:{mask}", "--class-name", "7=debris"], "no reference has"),
        (["-r", "{ref}:{mask}", "--class-name", "nucleus"], "must be ID=NAME"),
        (["--references", "{ref}"], "is not a napari-sansa reference set"),
    ],
    ids=[
        "no-mask",
        "missing-files",
        "colour-mask",
        "batch-0",
        "negative-memory",
        "no-references",
        "unused-name",
        "bad-name",
        "not-a-set",
    ],
)
def test_bad_input_exits_2_with_one_line(dataset, checkpoints, tmp_path, capsys, args, message):
    ref_dir, target_dir = dataset
    paths = {"ref": ref_dir / "ref.png", "img": ref_dir / "ref.png", "mask": ref_dir / "ref_mask.png"}
    args = [a.format(**paths) for a in args]
    code, err = run(
        ["segment", *args, str(target_dir), "--out", str(tmp_path / "o")] + model_args(checkpoints), capsys
    )
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unreadable_target_is_reported_and_the_others_finish(dataset, checkpoints, tmp_path, capsys):
    ref_dir, target_dir = dataset
    (target_dir / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code, err = run(
        [
            "segment",
            "-r",
            f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}",
            str(target_dir),
            "--out",
            str(out),
        ]
        + model_args(checkpoints),
        capsys,
    )
    assert code == 2
    assert "skipped: Cannot read image" in err and "broken.png" in err
    assert len(list(out.iterdir())) == 3


def test_unwritable_output_folder_is_reported(dataset, checkpoints, tmp_path, capsys):
    ref_dir, target_dir = dataset
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run(
        [
            "segment",
            "-r",
            f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}",
            str(target_dir),
            "--out",
            str(blocker / "sub"),
        ]
        + model_args(checkpoints),
        capsys,
    )
    assert code == 2 and "Cannot write to the output folder" in err


def test_offline_without_weights_says_what_to_download_and_where(tmp_path, capsys, monkeypatch):
    from napari_sansa.engine.network import weights

    def offline(remote, destination, progress):
        raise ConnectionError("no network")

    monkeypatch.setattr(weights, "default_transport", offline)
    code, err = run(["download", "universal", "--cache-dir", str(tmp_path)], capsys)
    assert code == 2
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt" in err
    assert str(tmp_path / "sam2_hiera_large.pt") in err
    assert str(tmp_path / "adapter_universal.pth") in err
    assert "drive.google.com" in err


def test_an_instance_mask_is_one_class_and_stderr_says_so(dataset, checkpoints, tmp_path, capsys, samples):
    ref_dir, target_dir = dataset
    instances = np.zeros(samples[0][1].shape, np.uint16)
    for i in range(50):
        r, c = divmod(i, 10)
        instances[20 + r * 40 : 40 + r * 40, 10 + c * 30 : 30 + c * 30] = i + 1
    tifffile.imwrite(ref_dir / "instances.tif", instances)
    out = tmp_path / "out"
    reference = f"{ref_dir / 'ref.png'}:{ref_dir / 'instances.tif'}"
    args = ["segment", "-r", reference, str(target_dir / "cell0.png"), "--out", str(out)]
    code, err = run(args + model_args(checkpoints), capsys)
    assert code == 0, err
    assert "50 object id(s), taken as one class" in err.lower() and "instances.tif" in err
    labels = iio_read(out / "cell0_labels.png")
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}


def iio_read(path):
    import imageio.v3 as iio

    return iio.imread(path)


def test_a_reference_set_gives_the_labels_of_its_image_and_mask(dataset, checkpoints, tmp_path, capsys):
    import napari_sansa as ns
    from napari_sansa.files.images import read_image

    ref_dir, target_dir = dataset
    classes = ns.classes_from_mask(read_image(ref_dir / "ref_mask.png")).classes
    reference = ns.Reference(read_image(ref_dir / "ref.png"), {c: ns.Mask(m) for c, m in classes.items()})
    ns.save_references(tmp_path / "set", [reference], {1: "nucleus"})
    outputs = []
    for given in (
        ["-r", f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}"],
        ["--references", str(tmp_path / "set")],
    ):
        out = tmp_path / f"out{len(outputs)}"
        code, err = run(
            ["segment", *given, str(target_dir / "stack16.tif"), "--out", str(out)] + model_args(checkpoints),
            capsys,
        )
        assert code == 0, err
        outputs.append(tifffile.imread(out / "stack16_labels.tif"))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert (tmp_path / "out1" / "classes.csv").read_text() == "id,name\n1,nucleus\n2,\n"
    assert not (tmp_path / "out0" / "classes.csv").exists()  # no names given: no table


def test_class_names_go_to_classes_csv_and_are_not_replaced_silently(dataset, checkpoints, tmp_path, capsys):
    import pandas as pd

    ref_dir, target_dir = dataset
    out = tmp_path / "out"
    base = [
        "segment",
        "-r",
        f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}",
        str(target_dir / "cell0.png"),
    ]
    names = ["--class-name", "1=nucleus", "--class-name", "2=cell body"]
    code, err = run(base + ["--out", str(out), *names] + model_args(checkpoints), capsys)
    assert code == 0, err
    table = pd.read_csv(out / "classes.csv")
    assert table.to_dict("list") == {"id": [1, 2], "name": ["nucleus", "cell body"]}
    (out / "cell0_labels.png").unlink()
    code, err = run(base + ["--out", str(out), "--class-name", "1=cell"] + model_args(checkpoints), capsys)
    assert code == 2 and "classes.csv already exists" in err
    assert pd.read_csv(out / "classes.csv")["name"].tolist() == ["nucleus", "cell body"]


def test_instances_writes_objects_and_their_table(dataset, checkpoints, tmp_path, capsys):
    import pandas as pd

    ref_dir, target_dir = dataset
    out = tmp_path / "out"
    reference = f"{ref_dir / 'ref.png'}:{ref_dir / 'ref_mask.png'}"
    target = str(target_dir / "cell0.png")
    args = ["segment", "-r", reference, target, "--out", str(out), "--instances", "watershed"]
    code, err = run(args + model_args(checkpoints), capsys)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cell0_labels.png", "cell0_objects.csv", "cell0_objects.tif"]
    import imageio.v3 as iio

    classes = iio.imread(out / "cell0_labels.png")
    objects = tifffile.imread(out / "cell0_objects.tif")
    table = pd.read_csv(out / "cell0_objects.csv")
    assert objects.dtype == np.int32 and objects.shape == classes.shape
    assert not objects[classes == 0].any()
    assert sorted(table["label"]) == sorted(np.unique(objects[objects > 0]))
    assert table["area"].sum() == np.count_nonzero(objects)
    assert set(table["class"]) <= {1, 2}


def test_instances_choice_is_checked(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "-r", "a:b", "t.png", "--out", "o", "--instances", "magic"])
    assert "invalid choice" in capsys.readouterr().err
