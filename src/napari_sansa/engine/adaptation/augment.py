"""Augmentations that suit microscopy: quarter turns, mirroring, intensity and contrast jitter.

Each is a fixed, hashable recipe, so that the frozen encoder blocks' output for an image and
one augmentation can be computed once and reused (see :mod:`.trunk`). Geometry applies to the
image, its masks and its clicks alike; intensity only to the image (RGB in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """Rotate by ``quarter_turns`` x 90 degrees, then mirror the columns if ``mirror``, then map
    intensities ``v -> (v ** gamma - 0.5) * contrast + 0.5 + brightness`` (clipped to [0, 1])."""

    quarter_turns: int = 0
    mirror: bool = False
    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0

    def geometry(self, array: np.ndarray) -> np.ndarray:
        """An image ``(H, W[, C])`` or mask ``(H, W)`` turned and mirrored."""
        out = np.rot90(array, self.quarter_turns % 4, axes=(0, 1))
        return np.ascontiguousarray(out[:, ::-1] if self.mirror else out)

    def image(self, rgb01: np.ndarray) -> np.ndarray:
        """An RGB image in [0, 1] with the geometry and the intensity jitter applied."""
        out = self.geometry(rgb01)
        if (self.contrast, self.brightness, self.gamma) == (1.0, 0.0, 1.0):
            return out
        out = (np.power(out, self.gamma) - 0.5) * self.contrast + 0.5 + self.brightness
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def points(self, coords: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """``(P, 2)`` row/column coordinates on an image of size ``hw``, moved with the geometry."""
        rows, cols = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
        h, w = hw
        for _ in range(self.quarter_turns % 4):  # np.rot90: (r, c) -> (w - 1 - c, r)
            rows, cols, h, w = w - 1 - cols, rows, w, h
        if self.mirror:
            cols = w - 1 - cols
        return np.stack([rows, cols], axis=1).astype(coords.dtype)


IDENTITY = Augmentation()


def draw_augmentations(rng: np.random.Generator, count: int) -> list[Augmentation]:
    """``count`` recipes: the image as it is first, then random turns, mirrors and jitter."""
    recipes = [IDENTITY]
    while len(recipes) < count:
        recipes.append(
            Augmentation(
                quarter_turns=int(rng.integers(4)),
                mirror=bool(rng.integers(2)),
                contrast=float(rng.uniform(0.7, 1.3)),
                brightness=float(rng.uniform(-0.1, 0.1)),
                gamma=float(np.exp(rng.uniform(-0.3, 0.3))),
            )
        )
    return recipes[:count]
