"""The model's trims (position encodings made once, activations in place) change no value."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

import napari_sansa as ns
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.loading import assemble
from napari_sansa.engine.network.memory import MemoryEntry, attend_to_memory, decode_target
from napari_sansa.engine.runtime.allocator import OPT_IN


def test_trimmed_model_gives_sam2s_own_features_memory_attention_and_masks(checkpoints, config):
    trimmed = ns.Sansa.from_checkpoints(*checkpoints, config=config).sam
    plain, _ = assemble(*checkpoints, config.image_size, "")
    plain.eval()
    assert any(type(m).__name__ == "InPlace" for m in trimmed.modules())
    assert not any(type(m).__name__ == "InPlace" for m in plain.modules())

    torch.manual_seed(0)
    x = torch.randn(1, 3, config.image_size, config.image_size)
    with torch.inference_mode():
        ours, theirs = trimmed.forward_image(x), plain.forward_image(x)
        for a, b in zip(ours["backbone_fpn"], theirs["backbone_fpn"], strict=True):
            assert torch.equal(a, b)
        fpn = ours["backbone_fpn"]
        feats = ImageFeatures((fpn[0], fpn[1]), fpn[2])  # the decoder's projections are applied
        memory = torch.randn(1, plain.mem_dim, *feats.top.shape[-2:])
        entry = MemoryEntry(memory, torch.randn_like(memory), torch.randn(1, plain.hidden_dim))
        pos = torch.randn_like(feats.top)
        a, b = (attend_to_memory(sam, feats, pos, [(0, entry)], [entry.obj_ptr]) for sam in (trimmed, plain))
        assert torch.equal(a, b)
        a, b = (decode_target(sam, feats, pos, 1, {0: entry}) for sam in (trimmed, plain))
        assert torch.equal(a.high_res, b.high_res) and torch.equal(a.iou, b.iou)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize("setting, kept", [(None, False), ("0", False), ("1", True)])
def test_freed_memory_is_kept_for_reuse_only_when_the_user_asks(setting, kept):
    code = (
        "from napari_sansa.engine.runtime.allocator import keep_freed_memory, release_kept_memory\n"
        "print(keep_freed_memory()); release_kept_memory()"
    )
    env = {k: v for k, v in os.environ.items() if k != OPT_IN}
    if setting is not None:
        env[OPT_IN] = setting
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(kept)
