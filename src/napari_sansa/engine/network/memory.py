"""SANSA's few-shot step on SAM2's memory: references become memories, targets attend to them.

References and targets form a pseudo-video: the first reference of a class is the conditioning
frame, further references are the frames before the target, and the target comes last. This
module follows the SANSA reference implementation's rules for which memories and object
pointers a frame sees, on top of the ``sam2`` package's modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from napari_sansa.engine.network.features import ImageFeatures

MASK_LOGIT_SCALE, MASK_LOGIT_BIAS = 20.0, -10.0


@dataclass(eq=False)
class MemoryEntry:
    """One frame's contribution to memory: spatial memory, its position encoding, object pointer."""

    features: torch.Tensor  # (1, mem_dim, h, w)
    pos: torch.Tensor  # (1, mem_dim, h, w)
    obj_ptr: torch.Tensor  # (1, hidden_dim)


@dataclass(eq=False)
class Decoded:
    """SAM heads' output for a batch of frames, best mask chosen by predicted IoU.

    Everything stays on the device (no host round trip until the caller reads the results).
    """

    low_res: torch.Tensor  # (B, 1, S/4, S/4) logits
    high_res: torch.Tensor  # (B, 1, S, S) logits
    iou: torch.Tensor  # (B,) predicted IoU of the chosen mask
    obj_ptr: torch.Tensor  # (B, hidden_dim)


def decode_heads(sam, pix_feat, feats: ImageFeatures, multimask: bool, **prompt) -> Decoded:
    """SAM2's prompt encoder and mask decoder on (memory-conditioned) top-level features."""
    _, _, ious, low, high, obj_ptr, _ = sam._forward_sam_heads(
        backbone_features=pix_feat,
        high_res_features=list(feats.high_res),
        multimask_output=multimask,
        **prompt,
    )
    return Decoded(low, high, ious.amax(dim=-1), obj_ptr)


def encode_memory(
    sam, feats: ImageFeatures, high_res_logits: torch.Tensor, obj_ptr: torch.Tensor
) -> MemoryEntry:
    """Encode a frame's mask logits into memory, as SAM2 does after each frame."""
    h, w = feats.top.shape[-2:]
    features, pos = sam._encode_new_memory(
        current_vision_feats=[feats.top_tokens()],
        feat_sizes=[(h, w)],
        pred_masks_high_res=high_res_logits,
        object_score_logits=None,
        is_mask_from_pts=False,
    )
    return MemoryEntry(features, pos[-1], obj_ptr)


def decode_mask_prompt(sam, feats: ImageFeatures, mask: torch.Tensor) -> Decoded:
    """Use a mask (in the model frame) directly as the frame's output, as SANSA does."""
    mask = mask.float()
    logits = mask * MASK_LOGIT_SCALE + MASK_LOGIT_BIAS
    size = logits.shape[-1]
    low = F.interpolate(
        logits, size=(size // 4, size // 4), mode="bilinear", align_corners=False, antialias=True
    )
    # The memory sees the mask after its round trip through low resolution.
    high = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    pointer = decode_heads(sam, feats.top, feats, False, mask_inputs=sam.mask_downsample(mask)).obj_ptr
    return Decoded(low, high, torch.ones(1, device=low.device), pointer)


def decode_point_prompt(sam, feats: ImageFeatures, point_inputs: Mapping[str, torch.Tensor]) -> Decoded:
    """Decode clicks and boxes on a reference frame, without memory."""
    pix_feat = feats.top + sam.no_mem_embed.view(1, -1, 1, 1)
    return decode_heads(sam, pix_feat, feats, False, point_inputs=dict(point_inputs))


def condition_on_memory(
    sam, feats: ImageFeatures, pos: torch.Tensor, frame: int, bank: Mapping[int, MemoryEntry]
) -> torch.Tensor:
    """The frames' top-level features after attending to the memories they may see.

    ``feats`` may hold a batch of frames that share the frame number and the memory bank.
    ``bank[0]`` is the conditioning frame; other keys are earlier frames. Spatial memories come
    from the conditioning frame and the ``num_maskmem - 1`` frames just before ``frame``; object
    pointers from the conditioning frame and up to ``max_obj_ptrs_in_encoder - 1`` frames before.
    """
    n_mem = sam.num_maskmem
    chosen = [(0, bank[0])]
    for slot in range(1, n_mem):
        previous = frame - (n_mem - slot)
        if previous > 0 and previous in bank:
            chosen.append((slot, bank[previous]))

    pointers = [bank[0].obj_ptr]
    for distance in range(1, min(frame + 1, sam.max_obj_ptrs_in_encoder)):
        previous = frame - distance
        if previous <= 0:
            break
        if previous in bank:
            pointers.append(bank[previous].obj_ptr)
    return attend_to_memory(sam, feats, pos, chosen, pointers)


def attend_to_memory(
    sam,
    feats: ImageFeatures,
    pos: torch.Tensor,
    spatial: Sequence[tuple[int, MemoryEntry]],
    pointers: Sequence[torch.Tensor],
    pointer_pos: torch.Tensor | None = None,
) -> torch.Tensor:
    """SAM2's memory attention over chosen memories: the frames' conditioned top-level features.

    ``spatial`` pairs each memory with its temporal slot ``t_pos`` (0 for conditioning frames,
    ``num_maskmem - 1`` for the frame just before), as SAM2 numbers them; ``pointers`` are
    ``(1, hidden_dim)`` object pointers with ``(n, 1, mem_dim)`` positions (default zeros).
    """
    n_mem = sam.num_maskmem
    memory = [entry.features.flatten(2).permute(2, 0, 1) for _, entry in spatial]
    memory_pos = [
        entry.pos.flatten(2).permute(2, 0, 1) + sam.maskmem_tpos_enc[n_mem - slot - 1]
        for slot, entry in spatial
    ]
    n_pointer_tokens = 0
    if pointers:
        obj_ptrs = torch.stack(list(pointers), dim=0)  # (n, 1, C)
        channels, mem_dim = obj_ptrs.shape[-1], sam.mem_dim
        if pointer_pos is None:
            pointer_pos = obj_ptrs.new_zeros(obj_ptrs.shape[0], 1, mem_dim)
        if mem_dim < channels:  # split each pointer into C / mem_dim tokens
            obj_ptrs = obj_ptrs.reshape(-1, 1, channels // mem_dim, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            pointer_pos = pointer_pos.repeat_interleave(channels // mem_dim, dim=0)
        memory.append(obj_ptrs)
        memory_pos.append(pointer_pos)
        n_pointer_tokens = obj_ptrs.shape[0]

    batch = feats.top.shape[0]
    conditioned = sam.memory_attention(
        curr=[feats.top_tokens()],
        curr_pos=[pos.flatten(2).permute(2, 0, 1).expand(-1, batch, -1)],
        memory=torch.cat(memory, dim=0).expand(-1, batch, -1),
        memory_pos=torch.cat(memory_pos, dim=0).expand(-1, batch, -1),
        num_obj_ptr_tokens=n_pointer_tokens,
    )
    return conditioned.permute(1, 2, 0).reshape(feats.top.shape)


def decode_target(
    sam, feats: ImageFeatures, pos: torch.Tensor, frame: int, bank: Mapping[int, MemoryEntry]
) -> Decoded:
    """Segment target frames from memory alone (multimask output, best predicted IoU)."""
    pix_feat = condition_on_memory(sam, feats, pos, frame, bank)
    return decode_heads(sam, pix_feat, feats, True)
