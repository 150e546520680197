"""precision="auto": bf16 where the hardware runs it natively, fp32 elsewhere, decided once and shown."""

from __future__ import annotations

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
