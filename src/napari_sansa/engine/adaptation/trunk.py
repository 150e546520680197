"""The image encoder cut at the first adapted Hiera block: frozen before it, trained from it on.

The blocks before the first adapter do not change while adapters train, so their output for an
image (and one augmentation) is computed once and kept; a training step runs only the blocks
from the first adapter on, the FPN neck and the projections the mask decoder reads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from napari_sansa.engine.network.adapters import adapter_modules
from napari_sansa.engine.network.features import ImageFeatures


@dataclass(eq=False)
class Prefix:
    """The frozen blocks' output for one image: the state entering the first adapted block and
    the outputs of the stages that ended before it (the FPN's high-resolution levels)."""

    state: torch.Tensor  # (1, H, W, C)
    stages: list[torch.Tensor]  # (1, C, H, W) each

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [self.state, *self.stages])


class SplitEncoder:
    """SAM2's image encoder in two parts, with a bounded cache of the frozen part's outputs."""

    def __init__(
        self, sam: torch.nn.Module, *, checkpointing: bool = False, cache_bytes: int = 2**30
    ) -> None:
        self.sam = sam
        self.trunk = sam.image_encoder.trunk
        self.first = min(adapter_modules(sam))
        self.checkpointing = checkpointing
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[Hashable, Prefix] = OrderedDict()
        self.prefix_passes = 0

    def _keeps_output(self, index: int) -> bool:
        ends = self.trunk.stage_ends
        return index == ends[-1] or (index in ends and self.trunk.return_interm_layers)

    def prefix(self, key: Hashable, make_input) -> Prefix:
        """The frozen blocks' output for ``key``; ``make_input()`` gives the (1, 3, S, S) model
        input when it is not cached."""
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        with torch.no_grad():
            x = self.trunk.patch_embed(make_input())
            x = x + self.trunk._get_pos_embed(x.shape[1:3])
            stages = []
            for index in range(self.first):
                x = self.trunk.blocks[index](x)
                if self._keeps_output(index):
                    stages.append(x.permute(0, 3, 1, 2))
        self.prefix_passes += 1
        prefix = Prefix(x, stages)
        self._cache[key] = prefix
        used = sum(p.nbytes for p in self._cache.values())
        while used > self.cache_bytes and len(self._cache) > 1:
            used -= self._cache.popitem(last=False)[1].nbytes
        return prefix

    def features(self, prefix: Prefix) -> tuple[ImageFeatures, torch.Tensor]:
        """Features (with gradients to the adapters) and the top level's position encoding."""
        x, outputs = prefix.state, list(prefix.stages)
        for index in range(self.first, len(self.trunk.blocks)):
            block = self.trunk.blocks[index]
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if self._keeps_output(index):
                outputs.append(x.permute(0, 3, 1, 2))
        encoder = self.sam.image_encoder
        levels, positions = encoder.neck(outputs)
        if encoder.scalp > 0:
            levels, positions = levels[: -encoder.scalp], positions[: -encoder.scalp]
        decoder = self.sam.sam_mask_decoder
        high_res = (decoder.conv_s0(levels[0]), decoder.conv_s1(levels[1]))
        return ImageFeatures(high_res, levels[-1]), positions[-1][:1]

    def clear(self) -> None:
        self._cache.clear()
