"""bf16 done once: SAM2's weights cast at model build, the sensitive parts kept in fp32.

Autocast casts every weight to bf16 again at every matrix product (it caches casts only for
weights that require gradients), so a bf16 pass under autocast spends a good part of its time
copying weights. Here the matrix-heavy layers (image encoder, memory attention, memory encoder,
the mask decoder's transformer) hold bf16 weights, cast once; what is numerically sensitive
stays fp32: LayerNorm statistics (``nn.LayerNorm`` keeps fp32 weights and computes its
statistics in fp32 for bf16 inputs; SAM2's ``LayerNorm2d``, which computes them with plain
tensor ops, runs in fp32), the random-Fourier position encoding of prompts, and the mask
decoder's output heads, so mask logits and predicted IoU come out in fp32. Attention's softmax
runs in PyTorch's fused attention kernels, which keep their statistics in fp32.

A layer casts its input to its own weights' dtype only where the two differ (at the few
boundaries between the bf16 and the fp32 parts), never its weights. At fp32 nothing is changed
or hooked, so fp32 results stay bit-for-bit those of SAM2.
"""

from __future__ import annotations

import torch
from torch import nn

from napari_sansa.engine.config import Precision

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Submodules of SAM2 kept in fp32 at bf16 (paths from the SAM2Base model).
FP32_MODULES = (
    "sam_prompt_encoder.pe_layer",  # sin/cos of random projections of coordinates
    "sam_prompt_encoder.point_embeddings",  # added to those in place
    "sam_prompt_encoder.not_a_point_embed",
    "sam_mask_decoder.output_upscaling",  # the mask logits...
    "sam_mask_decoder.output_hypernetworks_mlps",
    "sam_mask_decoder.iou_prediction_head",  # ...and the predicted IoU
)
# Layers whose input is cast to their weights' dtype where they differ.
_CASTING = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


def model_dtype(precision: Precision) -> torch.dtype:
    """The dtype of a model's weights and features at a resolved precision (not "auto")."""
    return DTYPES[precision]


def _layer_norm_2d():
    from sam2.modeling.sam2_utils import LayerNorm2d

    return LayerNorm2d


def _cast_input(module: nn.Module, args: tuple):
    first = args[0] if args else None
    dtype = module.weight.dtype
    if isinstance(first, torch.Tensor) and first.is_floating_point() and first.dtype != dtype:
        return (first.to(dtype), *args[1:])
    return None


def _cast_output(dtype: torch.dtype):
    def hook(module, args, output):
        if isinstance(output, torch.Tensor):
            return output.to(dtype)
        return tuple(
            t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in output
        )

    return hook


def cast_model(sam: nn.Module, precision: Precision) -> nn.Module:
    """Cast SAM2's weights to the precision's dtype once (in place), keeping the sensitive parts
    in fp32; returns the model. At fp32 the model is left exactly as it is."""
    dtype = model_dtype(precision)
    if dtype == torch.float32 or getattr(sam, "_sansa_dtype", None) == dtype:
        return sam
    norm_2d = _layer_norm_2d()
    keep = {name for name in FP32_MODULES if _has(sam, name)}
    kept = {id(m) for name in keep for m in sam.get_submodule(name).modules()}
    for module in sam.modules():
        if isinstance(module, (nn.LayerNorm, norm_2d)):
            kept.add(id(module))
    for module in sam.modules():
        if id(module) in kept:
            continue
        for tensor in list(module.parameters(recurse=False)):
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(dtype)
        for name, tensor in list(module.named_buffers(recurse=False)):
            if tensor.is_floating_point():
                module.register_buffer(name, tensor.to(dtype))
    for module in sam.modules():
        if isinstance(module, (*_CASTING, norm_2d)):
            module.register_forward_pre_hook(_cast_input)
    # Prompt embeddings are made in fp32 (position encodings of coordinates) and join
    # bf16 tokens and image features: cast them once, where they leave the prompt encoder.
    sam.sam_prompt_encoder.register_forward_hook(_cast_output(dtype))
    sam._sansa_dtype = dtype
    return sam


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True
