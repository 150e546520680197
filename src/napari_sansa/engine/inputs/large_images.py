"""A lazy image or pyramid read window by window, at the level that suits the working scale.

What an image is (its layout, channels and contrast) is :mod:`.images`; this module only adds
reading by windows, one direction: it uses :mod:`.images` and is not used by it.

Arrays are read only where a tile needs them (numpy, zarr, dask or tifffile's zarr store all
slice lazily). Intensities are mapped with limits decided once for the whole image, from a
sample of it, so that every tile is shown to the model with the same contrast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import (
    Image,
    Layout,
    Multiscale,
    channel_limits,
    layout,
    pick_channels,
    resolve_channels,
    to_rgb01,
)

SAMPLE_PIXELS = 2**22  # pixels read to decide an image's contrast limits
SAMPLE_WINDOWS = 8  # per side, when a lazy image is sampled in windows
SAMPLE_SIDE = 128


@dataclass(frozen=True, eq=False)
class _Level:
    data: object
    factor: tuple[float, float]  # this level's pixels per level-0 pixel, rows and columns
    layout: Layout


@dataclass(eq=False)
class LargeImage:
    """A large image, read a window at a time; windows are in level-0 pixels."""

    hw: tuple[int, int]
    levels: list[_Level]
    channels: Sequence[int] | None
    limits: list[tuple[float, float]]

    def level_for(self, scale: float) -> _Level:
        """The coarsest level that still has at least the working resolution."""
        chosen = self.levels[0]
        for level in self.levels[1:]:
            if min(level.factor) >= scale * (1 - 1e-6):
                chosen = level
        return chosen

    def read(self, rows: slice, cols: slice, scale: float = 1.0) -> np.ndarray:
        """``(h, w, 3)`` float32 RGB in [0, 1] of a level-0 window, read from the best level."""
        level = self.level_for(scale)
        window = _read(level, rows, cols)
        return to_rgb01(Image(pick_channels(window, self.channels)), self.limits)


def _read(level: _Level, rows: slice, cols: slice) -> np.ndarray:
    """A window of one level, channels last, in memory."""
    fy, fx = level.factor
    r0, r1 = math.floor(rows.start * fy), max(math.ceil(rows.stop * fy), math.floor(rows.start * fy) + 1)
    c0, c1 = math.floor(cols.start * fx), max(math.ceil(cols.stop * fx), math.floor(cols.start * fx) + 1)
    try:
        window = level.data[level.layout.window(slice(r0, r1), slice(c0, c1))]
        if hasattr(window, "dask"):  # read in this thread: tiles are already read in parallel, and
            window = window.compute(scheduler="synchronous")  # dask's own threads would keep memory
        window = np.asarray(window)
    except SansaError:
        raise
    except Exception as exc:  # zarr, dask, tifffile and OS errors alike: a part of the file is bad
        raise SansaError(
            f"Could not read pixels {rows.start}:{rows.stop}, {cols.start}:{cols.stop} of the image: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return level.layout.channels_last(window)


def _levels(image: Image | Multiscale) -> tuple[list[_Level], tuple[int, int]]:
    arrays = list(image.levels) if isinstance(image, Multiscale) else [image.data]
    levels: list[_Level] = []
    hw = (0, 0)  # level 0's
    for k, data in enumerate(arrays):
        if not (hasattr(data, "shape") and hasattr(data, "dtype")):
            data = np.asarray(data)
        level_layout = layout(data, image.channel_axis)
        h, w = level_layout.hw
        if k == 0:
            hw = (h, w)
        if k > 0 and (h > hw[0] or w > hw[1]):
            raise SansaError(
                f"Level {k} of the multiscale image ({h}x{w}) is larger than level 0 ({hw[0]}x{hw[1]}): "
                "levels must go from the full resolution down."
            )
        levels.append(_Level(data, (h / hw[0], w / hw[1]), level_layout))
    return levels, hw


def _sample(levels: list[_Level], hw: tuple[int, int]) -> np.ndarray:
    """Pixels (channels last) that stand for the whole image: the smallest level if it is small,
    else windows spread over it."""
    level = levels[-1]
    h, w = max(1, round(hw[0] * level.factor[0])), max(1, round(hw[1] * level.factor[1]))
    if h * w <= SAMPLE_PIXELS:
        return _read(level, slice(0, hw[0]), slice(0, hw[1]))
    if isinstance(level.data, np.ndarray):  # in memory: a strided view costs nothing
        step = math.ceil(math.sqrt(h * w / SAMPLE_PIXELS))
        every = slice(None, None, step)
        return level.layout.channels_last(level.data[level.layout.window(every, every)])
    side = SAMPLE_SIDE
    windows = []
    for r in np.linspace(0, max(hw[0] - side, 0), SAMPLE_WINDOWS).astype(int):
        for c in np.linspace(0, max(hw[1] - side, 0), SAMPLE_WINDOWS).astype(int):
            windows.append(_read(level, slice(r, min(r + side, hw[0])), slice(c, min(c + side, hw[1]))))
    return np.concatenate([w.reshape(-1, w.shape[-1]) for w in windows])[:, None, :]


def _readable_sample(levels: list[_Level], hw: tuple[int, int]) -> np.ndarray:
    """A sample from the smallest level that can be read: a damaged level of the pyramid only
    costs the tiles that read it, not the whole image."""
    for k in range(len(levels), 0, -1):
        try:
            return _sample(levels[:k], hw)
        except SansaError:
            if k == 1:
                raise
    raise AssertionError("unreachable")


def large_image(image: Image | Multiscale | np.ndarray) -> LargeImage:
    """Wrap an image for reading by windows, with contrast limits decided for all of it."""
    if not isinstance(image, (Image, Multiscale)):
        image = Image(image)
    levels, hw = _levels(image)
    if image.contrast_limits is not None:
        n = len(resolve_channels(levels[0].layout.n_channels, image.channels))
        limits = [tuple(float(v) for v in image.contrast_limits)] * n
    else:
        sample = pick_channels(_readable_sample(levels, hw), image.channels)
        limits = [channel_limits(sample[..., i]) for i in range(sample.shape[-1])]
    return LargeImage(hw, levels, image.channels, limits)


def window_bytes(
    image: Image | Multiscale | np.ndarray, tile: tuple[int, int], scale: float
) -> tuple[int, int, int]:
    """Of one level-0 window of ``tile`` pixels read at ``scale``: its pixels, its bytes per pixel
    (all channels), and the bytes of the stored chunks it touches (0 for an array without chunks),
    from the image's header only (no pixels read, no contrast decided)."""
    if not isinstance(image, (Image, Multiscale)):
        image = Image(image)
    levels, hw = _levels(image)
    level = LargeImage(hw, levels, None, []).level_for(scale)
    side = (math.ceil(tile[0] * level.factor[0]), math.ceil(tile[1] * level.factor[1]))
    raw = level.layout.n_channels * np.dtype(level.data.dtype).itemsize
    chunks = getattr(level.data, "chunks", None)
    touched = 0
    if isinstance(chunks, tuple) and len(chunks) >= 2:
        sides = [max(c) if isinstance(c, tuple) else int(c) for c in chunks]
        spans = [
            min(
                math.ceil(side[k] / sides[level.layout.order[k]]) + 1,
                math.ceil(hw[k] * level.factor[k] / sides[level.layout.order[k]]),
            )
            for k in (0, 1)
        ]
        touched = spans[0] * spans[1] * sides[level.layout.order[0]] * sides[level.layout.order[1]] * raw
    return side[0] * side[1], raw, touched
