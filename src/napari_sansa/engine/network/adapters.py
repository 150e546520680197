"""SANSA's AdaptFormer adapters and how they join SAM2's Hiera blocks.

An adapter runs in parallel to a block's MLP: ``x = x + mlp(norm2(x)) + adapter(x)``, where
``x`` is the block's state after the attention residual. The layout (which blocks carry one,
and how wide) is read from the adapter checkpoint itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from napari_sansa.engine.errors import SansaError

ADAPTER_KEY = re.compile(r"^(?:module\.)?(?:sam\.)?image_encoder\.trunk\.blocks\.(\d+)\.adapter\.(.+)$")
ADAPTER_SCALE = 0.1


class Adapter(nn.Module):
    """Pre-LayerNorm, linear down to a bottleneck, ReLU, linear up, scaled by 0.1."""

    def __init__(self, width: int, bottleneck: int, scale: float = ADAPTER_SCALE) -> None:
        super().__init__()
        self.scale = scale
        # Attribute names match the published checkpoints' keys.
        self.adapter_layer_norm_before = nn.LayerNorm(width)
        self.down_proj = nn.Linear(width, bottleneck)
        self.up_proj = nn.Linear(bottleneck, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.down_proj(self.adapter_layer_norm_before(x)))
        return self.up_proj(hidden) * self.scale


class MlpWithAdapter(nn.Module):
    """Stands in for a Hiera block's ``norm2`` + ``mlp`` pair and adds the adapter beside them."""

    def __init__(self, norm: nn.Module, mlp: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.norm = norm
        self.mlp = mlp
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(x)) + self.adapter(x)


@dataclass(frozen=True)
class AdapterLayout:
    """Block index -> (width, bottleneck) of its adapter."""

    blocks: dict[int, tuple[int, int]]

    def channel_factor(self, block_input_widths: Mapping[int, int]) -> float:
        """The bottleneck / block-input-width ratio the adapters were built with."""
        ratios = [self.blocks[i][1] / block_input_widths[i] for i in sorted(self.blocks)]
        return round(sum(ratios) / len(ratios), 2)


def adapter_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """Adapter tensors of a checkpoint, grouped by Hiera block."""
    grouped: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        match = ADAPTER_KEY.match(key)
        if match:
            grouped.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return grouped


def infer_layout(grouped: Mapping[int, Mapping[str, torch.Tensor]], source: str) -> AdapterLayout:
    """Read each adapter's width and bottleneck from its down-projection weight."""
    blocks = {}
    for index, tensors in grouped.items():
        weight = tensors.get("down_proj.weight")
        if weight is None or weight.ndim != 2:
            raise SansaError(f"{source}: the adapter of block {index} has no down-projection weight.")
        blocks[index] = (int(weight.shape[1]), int(weight.shape[0]))
    return AdapterLayout(dict(sorted(blocks.items())))


def attach_adapters(sam: nn.Module, layout: AdapterLayout, size_name: str, source: str) -> None:
    """Give the listed Hiera blocks an adapter (weights still to be loaded)."""
    blocks = sam.image_encoder.trunk.blocks
    for index, (width, bottleneck) in layout.blocks.items():
        if index >= len(blocks):
            raise SansaError(
                f"{source} has an adapter for Hiera block {index}, but SAM2 {size_name} has only "
                f"{len(blocks)} blocks: the adapter was trained for another SAM2 size."
            )
        block = blocks[index]
        if block.dim_out != width:
            raise SansaError(
                f"{source} has an adapter {width} wide for block {index}, but that block of SAM2 "
                f"{size_name} is {block.dim_out} wide: the adapter was trained for another SAM2 size."
            )
        block.mlp = MlpWithAdapter(block.norm2, block.mlp, Adapter(width, bottleneck))
        block.norm2 = nn.Identity()


def adapter_modules(sam: nn.Module) -> dict[int, Adapter]:
    """The adapters attached to a model, by block index."""
    return {
        i: block.mlp.adapter
        for i, block in enumerate(sam.image_encoder.trunk.blocks)
        if isinstance(block.mlp, MlpWithAdapter)
    }


def block_input_widths(sam: nn.Module) -> dict[int, int]:
    """Each Hiera block's input width (the first block of a stage widens its input)."""
    return {i: block.dim for i, block in enumerate(sam.image_encoder.trunk.blocks)}
