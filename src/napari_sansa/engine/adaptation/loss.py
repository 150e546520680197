"""The loss SANSA was trained with: sigmoid focal loss plus Dice loss on the query's mask logits.

As in the reference training (focal: alpha 0.25, gamma 2, averaged over pixels; Dice with a
smoothing of 1), summed with equal weights, averaged over the episodes of a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy, down-weighted where the prediction is already right."""
    logits, target = logits.flatten(1).float(), target.flatten(1).float()
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_right = p * target + (1 - p) * (1 - target)
    weight = FOCAL_ALPHA * target + (1 - FOCAL_ALPHA) * (1 - target)
    return (weight * ce * (1 - p_right) ** FOCAL_GAMMA).mean(1).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One minus the soft Dice overlap of the predicted probabilities and the mask."""
    p, target = logits.flatten(1).float().sigmoid(), target.flatten(1).float()
    overlap = 2 * (p * target).sum(1) + 1
    return (1 - overlap / (p.sum(1) + target.sum(1) + 1)).mean()


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Focal + Dice of ``(B, 1, H, W)`` logits against ``(B, 1, H, W)`` 0/1 masks."""
    return focal_loss(logits, target) + dice_loss(logits, target)
