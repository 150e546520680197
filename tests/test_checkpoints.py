"""Loading the official checkpoint formats, and clear refusals of wrong files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import napari_sansa as ns
from napari_sansa.engine.network.adapters import MlpWithAdapter


def test_size_and_adapter_layout_are_read_from_the_files(model):
    assert model.info.sam2_size == "tiny"
    # tiny has stages of 1, 2, 7, 2 blocks: stages 2 and 3 (0-based) are blocks 3..11
    assert model.info.adapter_blocks == tuple(range(3, 12))
    assert model.info.channel_factor == pytest.approx(0.3)
    blocks = model.sam.image_encoder.trunk.blocks
    assert all(isinstance(blocks[i].mlp, MlpWithAdapter) for i in range(3, 12))
    assert not any(isinstance(blocks[i].mlp, MlpWithAdapter) for i in range(3))


def test_bottleneck_widths_follow_each_block_input_width(model):
    blocks = model.sam.image_encoder.trunk.blocks
    for i in range(3, 12):
        adapter = blocks[i].mlp.adapter
        assert adapter.down_proj.out_features == int(blocks[i].dim * 0.3)
        assert adapter.down_proj.in_features == blocks[i].dim_out
    # the first block of stage 3 widens 384 -> 768, so its bottleneck comes from 384
    assert blocks[10].mlp.adapter.down_proj.out_features == int(384 * 0.3)


def test_adapter_runs_in_parallel_to_the_mlp():
    torch.manual_seed(0)
    norm, mlp = torch.nn.LayerNorm(8), torch.nn.Linear(8, 8)
    from napari_sansa.engine.network.adapters import Adapter

    adapter = Adapter(8, 3)
    torch.nn.init.normal_(adapter.up_proj.weight)
    x = torch.randn(2, 8)
    combined = MlpWithAdapter(norm, mlp, adapter)(x)
    manual = mlp(norm(x)) + 0.1 * adapter.up_proj(
        torch.relu(adapter.down_proj(adapter.adapter_layer_norm_before(x)))
    )
    torch.testing.assert_close(combined, manual)


def _save(path, payload):
    torch.save(payload, path)
    return path


def test_zero_adapters_give_plain_sam2_features(checkpoints, config, model, tmp_path):
    sam2_path, adapter_path = checkpoints
    adapters = torch.load(adapter_path, weights_only=True)["model"]
    zeroed = {k: (torch.zeros_like(v) if "up_proj" in k else v) for k, v in adapters.items()}
    zero_path = _save(tmp_path / "zero.pth", {"model": zeroed})
    with_zero = ns.Sansa.from_checkpoints(sam2_path, zero_path, config=config)
    with_real = model  # the same files and config

    from napari_sansa.engine.network.architecture import SAM2_SIZES, build_sam2

    plain = build_sam2(SAM2_SIZES["tiny"], config.image_size)
    plain.load_state_dict(torch.load(sam2_path, weights_only=True)["model"], strict=False)
    plain_model = ns.Sansa(plain, config)

    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    torch.testing.assert_close(with_zero.encode(image).top, plain_model.encode(image).top)
    assert not torch.allclose(with_real.encode(image).top, plain_model.encode(image).top)


def test_checkpoints_saved_from_distributed_training_load(checkpoints, config, tmp_path):
    sam2_path, adapter_path = checkpoints
    adapters = torch.load(adapter_path, weights_only=True)["model"]
    ddp = _save(tmp_path / "ddp.pth", {"model": {"module." + k: v for k, v in adapters.items()}, "epoch": 3})
    model = ns.Sansa.from_checkpoints(sam2_path, ddp, config=config)
    assert model.info.adapter_blocks == tuple(range(3, 12))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d, s, a: d / "missing.pt", "does not exist"),
        (lambda d, s, a: _write(d / "notes.pt", b"these are my notes\n"), "cannot be read"),
        (lambda d, s, a: _write(d / "half.pt", s.read_bytes()[: s.stat().st_size // 2]), "truncated"),
        (lambda d, s, a: a, "adapter weights only"),
        (
            lambda d, s, a: _save(d / "other.pt", {"model": {"weight": torch.zeros(3)}}),
            "not a SAM2 checkpoint",
        ),
    ],
    ids=["missing", "not-torch", "truncated", "adapter-as-sam2", "other-model"],
)
def test_bad_sam2_files_are_refused_with_the_file_name(checkpoints, config, tmp_path, make, message):
    sam2_path, adapter_path = checkpoints
    bad = make(tmp_path, sam2_path, adapter_path)
    with pytest.raises(ns.SansaError, match=message) as info:
        ns.Sansa.from_checkpoints(bad, adapter_path, config=config)
    assert bad.name in str(info.value)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_sam2_file_given_as_adapter_is_refused(checkpoints, config):
    sam2_path, _ = checkpoints
    with pytest.raises(ns.SansaError, match="is a SAM2 checkpoint, not a SANSA adapter"):
        ns.Sansa.from_checkpoints(sam2_path, sam2_path, config=config)


def test_adapter_for_another_sam2_size_is_refused(checkpoints, config, tmp_path):
    sam2_path, _ = checkpoints
    # SAM2-large's stage-2 blocks are 576 wide; tiny's are 384
    large = {
        f"sam.image_encoder.trunk.blocks.{i}.adapter.{name}": tensor
        for i in range(8, 12)
        for name, tensor in {
            "adapter_layer_norm_before.weight": torch.ones(576),
            "adapter_layer_norm_before.bias": torch.zeros(576),
            "down_proj.weight": torch.zeros(172, 576),
            "down_proj.bias": torch.zeros(172),
            "up_proj.weight": torch.zeros(576, 172),
            "up_proj.bias": torch.zeros(576),
        }.items()
    }
    path = _save(tmp_path / "adapter_large.pth", {"model": large})
    with pytest.raises(ns.SansaError, match="trained for another SAM2 size"):
        ns.Sansa.from_checkpoints(sam2_path, path, config=config)


class Payload:
    """Unpickling this would run a command."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/napari_sansa_pwned",))


def test_pickle_that_would_run_code_is_refused(checkpoints, config, tmp_path):
    sam2_path, _ = checkpoints
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model": Payload()}, f)
    with pytest.raises(ns.SansaError, match="could run code"):
        ns.Sansa.from_checkpoints(sam2_path, evil, config=config)
    import os

    assert not os.path.exists("/tmp/napari_sansa_pwned")


def test_missing_cuda_is_a_clear_error(checkpoints):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ns.SansaError, match="no CUDA GPU"):
        ns.Sansa.from_checkpoints(*checkpoints, device="cuda")
