"""Adapting the adapters to the user's images: episodes, held-out scoring, checkpoints, CLI."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_sansa import Mask, Points, Reference, Sansa, SansaConfig, SansaError
from napari_sansa.engine.adaptation import episodes
from napari_sansa.engine.network.checkpoints import read_state_dict
from napari_sansa.samples import bright_discs

ADAPT_SIZE = 128  # model input: adapting runs forward and backward, so smaller than other tests


@pytest.fixture
def own_model(checkpoints):
    """A model of its own: adapting changes its weights."""
    return Sansa.from_checkpoints(
        *checkpoints, config=SansaConfig(device="cpu", image_size=ADAPT_SIZE, precision="fp32")
    )


@pytest.fixture(scope="module")
def discs():
    """Eight images of the synthetic domain (the class: bright discs) as mask references."""
    return [Reference(image, {1: Mask(mask)}) for image, mask in bright_discs(8, (96, 96), seed=2)]


def adapter_tensors(model):
    from napari_sansa.engine.adaptation.checkpoint import adapter_state

    return adapter_state(model.sam)


def test_loss_falls_and_held_out_iou_rises(own_model, discs):
    # Random weights: the random mask decoder learning too gets there in few steps (the adapters
    # alone learn as well, more slowly: benchmarks/adapt.py).
    report = own_model.adapt(
        discs, steps=20, learning_rate=3e-3, evaluate_every=10, shots=2, train="adapters+decoder"
    )
    first, last = np.mean(report.losses[:5]), np.mean(report.losses[-5:])
    assert last < 0.8 * first
    assert report.iou_after > report.iou_before + 0.25
    assert set(report.before) == set(report.after) == set(report.held_out)
    assert "adapted" in own_model.info.name


def test_held_out_images_are_never_trained_on(own_model, discs, monkeypatch):
    seen = []
    draw = episodes.EpisodeSampler.draw

    def spying(self):
        episode = draw(self)
        seen.extend(view.image.index for view in (*episode.supports, episode.query))
        return episode

    monkeypatch.setattr(episodes.EpisodeSampler, "draw", spying)
    report = own_model.adapt(discs, steps=6, validation=0.25, evaluate_every=3)
    assert len(report.held_out) == 2 and len(seen) >= 12
    assert not set(seen) & set(report.held_out)
    assert set(seen) <= set(report.trained_on)


def test_cancel_keeps_the_best_scored_state(own_model, discs):
    stop = threading.Event()
    states = {}

    def progress(news):
        if news.held_out_iou is not None:
            states[news.step] = adapter_tensors(own_model)
        if news.step == 5:
            stop.set()

    report = own_model.adapt(
        discs, steps=50, evaluate_every=2, learning_rate=3e-3, progress=progress, cancel=stop
    )
    assert report.cancelled and report.steps == 5
    kept = adapter_tensors(own_model)
    expected = states[report.best_step] if report.best_step else None
    if expected is not None:
        assert all(torch.equal(kept[k], expected[k]) for k in kept)
    assert report.iou_after == max(iou for _, iou in report.history)


def test_too_few_masks_is_one_clear_message(own_model, discs):
    clicks = [Reference(ref.image, {1: Points([[48, 48]])}) for ref in discs[:4]]
    with pytest.raises(SansaError, match="at least 3 images annotated with masks.*have 2"):
        own_model.adapt(discs[:2] + clicks, steps=1)


def test_clicked_images_serve_as_supports(own_model, discs):
    clicks = [Reference(ref.image, {1: Points([[48, 48]])}) for ref in discs[:3]]
    report = own_model.adapt(discs[3:6] + clicks, steps=3, validation=0.25)
    assert len(report.held_out) == 1 and report.held_out[0] < 3
    assert report.steps == 3


def test_saved_adapter_has_the_published_keys_and_loads(own_model, discs, checkpoints, tmp_path):
    own_model.adapt(discs, steps=2, evaluate_every=1)
    path = own_model.save_adapter(tmp_path / "adapted.pth", reference_set="discs")
    published = read_state_dict(checkpoints[1], "adapter")
    saved = read_state_dict(path, "adapter")
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in published.items()}
    assert all(v.dtype == torch.float32 for v in saved.values())
    record = torch.load(path, weights_only=True)["sansa_adaptation"]
    assert record["reference_set"] == "discs" and record["steps"] == 2
    assert record["base_adapter"] == str(checkpoints[1])

    from napari_sansa.cli.main import build_parser
    from napari_sansa.cli.options import load_model

    args = build_parser().parse_args(
        ["segment", "t.png", "-o", str(tmp_path), "--sam2", str(checkpoints[0]), "--adapter", str(path)]
        + ["--device", "cpu", "--precision", "fp32", "--image-size", str(ADAPT_SIZE)]
    )
    loaded = load_model(args)
    assert all(
        torch.equal(a, b)
        for a, b in zip(adapter_tensors(loaded).values(), adapter_tensors(own_model).values())
    )
    image = discs[7].image
    same = loaded.segment(discs[:3], [image])[0].labels
    assert np.array_equal(same, own_model.segment(discs[:3], [image])[0].labels)


def test_adapt_command_writes_an_adapter(discs, checkpoints, tmp_path, capsys):
    from napari_sansa import save_references
    from napari_sansa.cli.main import main

    save_references(tmp_path / "set", discs[:5])
    out = tmp_path / "mine.pth"
    code = main(
        ["adapt", "--references", str(tmp_path / "set"), "--out", str(out), "--steps", "3"]
        + ["--sam2", str(checkpoints[0]), "--adapter", str(checkpoints[1]), "--device", "cpu"]
        + ["--precision", "fp32", "--image-size", str(ADAPT_SIZE)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file()
    assert captured.out.strip().splitlines()[-1].startswith("Held-out IoU before")
    assert main(["adapt", "--references", str(tmp_path / "set"), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
