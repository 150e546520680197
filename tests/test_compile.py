"""Optional torch.compile of the image encoder: off by default, same masks, falls back where it fails."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
import torch

import napari_sansa as ns
from napari_sansa.cli.main import build_parser


@pytest.fixture(scope="module")
def references(samples):
    image, labels = samples[0]
    return [ns.Reference(image, {1: ns.Mask(labels == 1)})]


def test_compile_is_off_by_default(model):
    assert ns.SansaConfig().compile is False
    assert build_parser().parse_args(["segment", "t.png", "-o", "out"]).compile is False
    assert build_parser().parse_args(["segment", "t.png", "-o", "out", "--compile"]).compile is True
    assert model.compile_seconds is None
    assert not hasattr(model.sam.image_encoder, "_orig_mod")  # not compiled
    with pytest.raises(ns.SansaError, match="compile"):
        ns.SansaConfig(compile="yes")


def test_compiled_encoder_gives_the_same_masks(checkpoints, config, model, samples, references, monkeypatch):
    # Inductor's C++ build takes minutes on CI's two cores: TorchDynamo captures the encoder's
    # graph as it does for Inductor, and the captured graph runs on PyTorch's own kernels.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    compiled = ns.Sansa.from_checkpoints(*checkpoints, config=replace(config, compile=True))
    assert hasattr(compiled.sam.image_encoder, "_orig_mod") and compiled.compile_seconds > 0
    target = samples[1][0]
    expected = model.segment(references, [target])[0]
    got = compiled.segment(references, [target])[0]
    np.testing.assert_allclose(got.logits[1], expected.logits[1], atol=1e-4)
    assert np.array_equal(got.labels, expected.labels)


def test_compile_failure_warns_and_runs_uncompiled(
    checkpoints, config, model, samples, references, monkeypatch
):
    def no_compiler(module, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.warns(RuntimeWarning, match="torch.compile does not work here.*C\\+\\+ compiler"):
        fallback = ns.Sansa.from_checkpoints(*checkpoints, config=replace(config, compile=True))
    assert fallback.compile_seconds is None
    target = samples[1][0]
    np.testing.assert_array_equal(
        fallback.segment(references, [target])[0].logits[1], model.segment(references, [target])[0].logits[1]
    )
