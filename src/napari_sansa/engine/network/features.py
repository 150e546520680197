"""What the encoder makes of an image: the features the SAM2 heads and memory work on."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(eq=False)
class ImageFeatures:
    """What the SAM2 heads need of encoded images (batch first, channels first)."""

    high_res: tuple[torch.Tensor, torch.Tensor]  # strides 4 and 8, already projected for the decoder
    top: torch.Tensor  # stride 16, the features memory attention works on

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (*self.high_res, self.top)

    def top_tokens(self) -> torch.Tensor:
        """Top-level features as ``(HW, B, C)`` tokens."""
        return self.top.flatten(2).permute(2, 0, 1)

    def item(self, index: int) -> ImageFeatures:
        """One image of a batch, in its own memory (so caching it does not keep the batch alive)."""
        return ImageFeatures(*_split([t[index : index + 1].clone() for t in self.tensors]))

    @staticmethod
    def stack(items: list[ImageFeatures]) -> ImageFeatures:
        """A batch of several images' features."""
        if len(items) == 1:
            return items[0]
        return ImageFeatures(*_split([torch.cat(ts) for ts in zip(*(f.tensors for f in items))]))


def _split(tensors):
    return (tensors[0], tensors[1]), tensors[2]
