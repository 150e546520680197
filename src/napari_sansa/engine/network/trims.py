"""Position encodings made once per grid instead of at every call.

SAM2 recomputes or copies the same position encodings again and again: the Hiera trunk
resizes (bicubic) and tiles its learned position embedding for every image, the FPN neck repeats a cached sine encoding into a new tensor for every level of every image
(256 x 256 x 256 floats at input 1024: 64 MiB copied per image, of which SANSA uses only the top
level), the memory encoder does the same for every memory it encodes, and the prompt encoder
recomputes the dense position encoding of the image grid at every decoder call. They depend
only on the grid's size, so each is made once and then shared (a broadcast view, no copy).
The values are exactly those SAM2 computes, so results do not change.
"""

from __future__ import annotations

import torch
from torch import nn


class SharedPositions(nn.Module):
    """A position encoding module's output for a grid, made once and then broadcast over the batch."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape[-2:]), x.device, x.dtype)
        pos = self._cache.get(key)
        if pos is None:
            pos = self._cache[key] = self.inner(x[:1]).to(x.dtype)
        return pos.expand(x.shape[0], -1, -1, -1)


def _share_dense_pe(encoder: nn.Module, dtype: torch.dtype) -> None:
    original = encoder.get_dense_pe
    if getattr(original, "shared_dtype", None) == dtype:
        return
    original = getattr(original, "original", original)
    cache: dict[torch.device, torch.Tensor] = {}

    def get_dense_pe() -> torch.Tensor:
        device = encoder.no_mask_embed.weight.device
        if device not in cache:
            cache[device] = original().to(dtype)
        return cache[device]

    get_dense_pe.original, get_dense_pe.shared_dtype = original, dtype
    encoder.get_dense_pe = get_dense_pe


def _share_trunk_pos_embed(trunk: nn.Module) -> None:
    original = trunk._get_pos_embed
    if getattr(original, "shared", False):
        return
    cache: dict[tuple, torch.Tensor] = {}

    def get_pos_embed(hw) -> torch.Tensor:
        key = (tuple(hw), trunk.pos_embed.device, trunk.pos_embed.dtype)
        if key not in cache:
            with torch.no_grad():
                cache[key] = original(hw)
        return cache[key]

    get_pos_embed.shared = True
    trunk._get_pos_embed = get_pos_embed


def share_position_encodings(sam: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Make SAM2's position encodings once per grid (in place; ``dtype``: the dense position
    encoding's dtype, the model's); returns the model."""
    _share_trunk_pos_embed(sam.image_encoder.trunk)
    neck = sam.image_encoder.neck
    if not isinstance(neck.position_encoding, SharedPositions):
        neck.position_encoding = SharedPositions(neck.position_encoding)
    memory_encoder = sam.memory_encoder
    if not isinstance(memory_encoder.position_encoding, SharedPositions):
        memory_encoder.position_encoding = SharedPositions(memory_encoder.position_encoding)
    _share_dense_pe(sam.sam_prompt_encoder, dtype)
    return sam
