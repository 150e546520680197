"""bf16 done once: weights cast at model build, sensitive parts in fp32, masks as at fp32.

bf16 is emulated (slow) on CPUs without AMX/AVX512-BF16, so these tests share one bf16 model
and run one target.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import napari_sansa as ns


@pytest.fixture(scope="module")
def bf16_model(checkpoints):
    config = ns.SansaConfig(device="cpu", precision="bf16", image_size=256)
    return ns.Sansa.from_checkpoints(*checkpoints, config=config)


@pytest.fixture(scope="module")
def one_class(samples):
    image, labels = samples[0]
    return [ns.Reference(image, {1: ns.Mask(labels == 1)})]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_bf16_masks_match_fp32(model, bf16_model, samples, one_class):
    target = samples[1][0]
    full = model.segment(one_class, [target])[0]
    half = bf16_model.segment(one_class, [target])[0]
    assert half.logits[1].dtype == np.float32
    assert not np.array_equal(half.logits[1], full.logits[1])  # it really ran in bf16
    assert iou(half.labels == 1, full.labels == 1) >= 0.98
    assert 0 < (full.labels == 1).mean() < 1  # a mask, neither empty nor everything


def test_bf16_weights_are_cast_once_and_sensitive_parts_stay_fp32(bf16_model):
    sam = bf16_model.sam
    assert bf16_model.dtype == torch.bfloat16
    heavy = [sam.image_encoder, sam.memory_attention, sam.memory_encoder, sam.sam_mask_decoder.transformer]
    for part in heavy:
        for module in part.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                assert module.weight.dtype == torch.bfloat16
    for module in sam.modules():
        if isinstance(module, nn.LayerNorm) or type(module).__name__ == "LayerNorm2d":
            assert module.weight.dtype == torch.float32  # normalisation statistics in fp32
    decoder = sam.sam_mask_decoder
    for head in (decoder.iou_prediction_head, decoder.output_hypernetworks_mlps, decoder.output_upscaling):
        assert all(p.dtype == torch.float32 for p in head.parameters())  # logits and IoU in fp32


class WeightCopies(TorchDispatchMode):
    """Records every dtype conversion of a model's weights (as autocast makes at every call)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.weights = {p.data_ptr(): name for name, p in module.named_parameters()}
        self.copied: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        source = args[0] if args else None
        if (
            func.overloadpacket in (torch.ops.aten.to, torch.ops.aten._to_copy)
            and isinstance(source, torch.Tensor)
            and source.data_ptr() in self.weights
            and out.data_ptr() != source.data_ptr()
        ):
            self.copied.append(self.weights[source.data_ptr()])
        return out


def test_bf16_features_are_bf16_and_no_weight_is_copied_per_call(bf16_model, samples, one_class):
    with WeightCopies(bf16_model.sam) as watch:  # a new target: encoder, memory attention, decoder
        bf16_model.segment(one_class, [samples[2][0]])
    assert watch.copied == []
    features = bf16_model.encode(samples[2][0])
    assert {t.dtype for t in features.tensors} == {torch.bfloat16}
    with torch.inference_mode(), WeightCopies(bf16_model.sam) as watch:  # the watch sees casts
        bf16_model.sam.obj_ptr_proj.layers[0].weight.float()
    assert watch.copied == ["obj_ptr_proj.layers.0.weight"]
