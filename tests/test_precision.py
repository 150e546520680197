"""precision="auto": bf16 where the hardware runs it natively, fp32 elsewhere, decided once and shown."""

from __future__ import annotations

import os

import pytest
import torch

import napari_sansa as ns
from napari_sansa.cli.main import build_parser
from napari_sansa.engine.config import resolve_precision


@pytest.fixture
def cpu_features(monkeypatch):
    """Fake the CPU's bf16 features: ``cpu_features(amx=..., avx512_bf16=...)``."""

    def fake(amx=False, avx512_bf16=False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)

    return fake


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16")],
)
def test_auto_picks_bf16_only_on_cpus_that_run_it_natively(cpu_features, amx, avx512_bf16, expected):
    cpu_features(amx=amx, avx512_bf16=avx512_bf16)
    assert resolve_precision(torch.device("cpu"), "auto") == expected
    assert resolve_precision(torch.device("cpu"), "fp32") == "fp32"  # explicit choices stay
    assert resolve_precision(torch.device("cpu"), "bf16") == "bf16"


@pytest.mark.parametrize(("capability", "expected"), [((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_picks_bf16_on_gpus_from_ampere_on(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision(torch.device("cuda"), "auto") == expected


def test_auto_is_the_default_everywhere_and_the_model_says_what_it_chose(checkpoints, model, cpu_features):
    assert ns.SansaConfig().precision == "auto"
    assert build_parser().parse_args(["segment", "t.png", "-o", "out"]).precision == "auto"
    from napari_sansa.plugin.core.settings import WidgetSettings

    assert WidgetSettings().precision == "auto"
    cpu_features(amx=False, avx512_bf16=False)
    auto = ns.SansaConfig(device="cpu", image_size=256)
    assert ns.Sansa(model.sam, auto).config.precision == "fp32"  # fp32 weights: shared, untouched
    cpu_features(amx=True)
    model = ns.Sansa.from_checkpoints(*checkpoints, config=ns.SansaConfig(device="cpu", image_size=256))
    assert model.config.precision == "bf16"


@pytest.fixture
def apple_gpu(monkeypatch):
    """Fake a Mac without CUDA whose Apple GPU (MPS) is there: ``apple_gpu(bf16=...)``."""
    from napari_sansa.engine import config

    def fake(bf16=False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
        monkeypatch.setattr(config, "mps_runs_bf16", lambda device: bf16)

    return fake


def test_auto_picks_the_apple_gpu_after_cuda(apple_gpu, monkeypatch):
    from napari_sansa.engine.config import resolve_device

    apple_gpu()
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")  # CUDA first
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ns.SansaError, match="MPS is not available"):
        resolve_device("mps")


@pytest.mark.parametrize("bf16", [False, True])
def test_auto_precision_on_an_apple_gpu_is_fp32_and_bf16_only_where_mps_has_it(apple_gpu, bf16):
    apple_gpu(bf16=bf16)
    mps = torch.device("mps")
    assert resolve_precision(mps, "auto") == "fp32"
    assert resolve_precision(mps, "fp32") == "fp32"
    if bf16:
        assert resolve_precision(mps, "bf16") == "bf16"
    else:
        with pytest.raises(ns.SansaError, match="macOS 14"):
            resolve_precision(mps, "bf16")


def test_on_macos_the_package_lets_operations_mps_lacks_run_on_the_cpu(monkeypatch):
    from napari_sansa.engine.config import MPS_CPU_FALLBACK_OPS, allow_mps_fallback

    assert "aten::upsample_bicubic2d.out" in MPS_CPU_FALLBACK_OPS
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    monkeypatch.setattr("sys.platform", "darwin")
    allow_mps_fallback()
    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "0")  # the user's choice stays
    allow_mps_fallback()
    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "0"
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK")
    monkeypatch.setattr("sys.platform", "linux")
    allow_mps_fallback()
    assert "PYTORCH_ENABLE_MPS_FALLBACK" not in os.environ
