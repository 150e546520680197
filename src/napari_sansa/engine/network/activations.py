"""Activations applied in place when nothing needs their input: one large allocation less per MLP.

On a CPU a fresh tensor of more than 32 MiB is a fresh memory mapping (glibc's largest
``malloc`` threshold), and every 4 KiB page of it faults and is zeroed when first written. The
hidden layer of an MLP is the largest tensor of a transformer block (4x its width: 151 MiB per
block of SAM2-Large's first stage at input 1024), and ``act(linear(x))`` writes it twice, once
for the product and once for the activation. Applying GELU or ReLU in place on the product gives
the same values and halves that traffic. Where gradients are recorded, the usual out-of-place
activation runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InPlace(nn.Module):
    """GELU or ReLU, in place on its input when no gradient is recorded."""

    def __init__(self, kind: str, approximate: str = "none") -> None:
        super().__init__()
        self.kind, self.approximate = kind, approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.gelu(x, approximate=self.approximate) if self.kind == "gelu" else F.relu(x)
        if self.kind == "gelu":
            return torch.ops.aten.gelu_(x, approximate=self.approximate)
        return x.relu_()

    def extra_repr(self) -> str:
        return f"{self.kind}, in place"


def _in_place_for(act) -> InPlace | None:
    if isinstance(act, InPlace):
        return act
    if isinstance(act, nn.GELU):
        return InPlace("gelu", act.approximate)
    if isinstance(act, nn.ReLU) or act is F.relu:
        return InPlace("relu")
    return None


def in_place_activations(sam: nn.Module) -> nn.Module:
    """Swap the GELU and ReLU of SAM2's MLPs (Hiera blocks, memory attention, prompt and mask
    heads) for in-place ones (in place on ``sam``); returns the model. Values do not change."""
    for module in sam.modules():
        for name in ("act", "activation"):
            current = getattr(module, name, None)
            swapped = _in_place_for(current) if current is not None else None
            if swapped is not None and swapped is not current:
                if isinstance(current, nn.Module):
                    setattr(module, name, swapped)
                else:  # a plain function attribute (memory attention's F.relu)
                    object.__setattr__(module, name, swapped)
    return sam
