"""Generated sample images: a few pictures of the same kind of object, with their true masks.

Generated rather than shipped, so the package stays small and nothing is downloaded.
"""

from __future__ import annotations

import numpy as np


def cells(
    n_images: int = 6, shape: tuple[int, int] = (256, 320), seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_images`` uint8 RGB images of round cells on a textured background, with label masks.

    Class 1 is the cells' nuclei, class 2 the bright granules some cells carry.
    """
    from skimage.draw import disk, ellipse
    from skimage.filters import gaussian

    rng = np.random.default_rng(seed)
    samples = []
    h, w = shape
    for _ in range(n_images):
        background = gaussian(rng.random(shape), sigma=6) * 0.35 + 0.1
        image = np.stack([background * 0.9, background, background * 1.1], axis=-1)
        labels = np.zeros(shape, np.uint8)
        for _ in range(int(rng.integers(3, 7))):
            r, c = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
            ry, rx = rng.uniform(0.06, 0.12) * h, rng.uniform(0.06, 0.12) * w
            rr, cc = ellipse(r, c, ry, rx, shape=shape, rotation=rng.uniform(0, np.pi))
            labels[rr, cc] = 1
            image[rr, cc] = (0.35, 0.45, 0.95)
            if rng.random() < 0.6:
                rr, cc = disk(
                    (r + rng.uniform(-0.3, 0.3) * ry, c + rng.uniform(-0.3, 0.3) * rx),
                    min(ry, rx) * 0.3,
                    shape=shape,
                )
                labels[rr, cc] = 2
                image[rr, cc] = (0.95, 0.85, 0.3)
        image = gaussian(image, sigma=1.2, channel_axis=-1) + rng.normal(0, 0.02, image.shape)
        samples.append(((np.clip(image, 0, 1) * 255).astype(np.uint8), labels))
    return samples


def drifting_cells(n_planes: int = 12, shape: tuple[int, int] = (256, 320), seed: int = 1) -> np.ndarray:
    """A ``(Z, Y, X)`` uint16 stack of cells drifting and slowly growing from plane to plane,
    like a time-lapse or neighbouring sections of a volume."""
    from scipy import ndimage

    image, _ = cells(1, shape, seed)[0]
    base = image[..., 2].astype(np.float32)
    rng = np.random.default_rng(seed)
    planes = []
    for z in range(n_planes):
        zoom = 1 + 0.01 * z
        moved = ndimage.affine_transform(
            base, np.eye(2) / zoom, offset=(-1.5 * z, -2.5 * z), order=1, mode="reflect"
        )
        planes.append(moved + rng.normal(0, 3, shape))
    return (np.clip(np.stack(planes), 0, 255) * 64).astype(np.uint16)


def bright_discs(
    n_images: int = 8, shape: tuple[int, int] = (128, 128), seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_images`` uint8 grayscale images where the class is the bright discs, among dark discs
    and bright squares on a noisy background, with their masks (1 = bright disc).

    A domain made to need adapting: what sets the class apart is shape and brightness together.
    """
    from skimage.draw import disk, rectangle

    rng = np.random.default_rng(seed)
    h, w = shape
    samples = []
    for _ in range(n_images):
        image = 0.35 + rng.normal(0, 0.08, shape)
        mask = np.zeros(shape, np.uint8)
        for kind in rng.permutation([0, 0, 0, 1, 1, 2, 2]):
            size = rng.uniform(0.06, 0.11) * min(h, w)
            r, c = rng.uniform(size, h - size), rng.uniform(size, w - size)
            if kind == 2:  # a bright square
                rr, cc = rectangle((r - size, c - size), extent=(2 * size, 2 * size), shape=shape)
                image[rr, cc] = 0.85
                mask[rr, cc] = 0
            else:
                rr, cc = disk((r, c), size, shape=shape)
                image[rr, cc] = 0.85 if kind == 0 else 0.1
                mask[rr, cc] = 1 if kind == 0 else 0
        image += rng.normal(0, 0.05, shape)
        samples.append(((np.clip(image, 0, 1) * 255).astype(np.uint8), mask))
    return samples
