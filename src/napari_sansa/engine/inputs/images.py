"""Turn any user image into the RGB tensor SAM2 was trained on.

Images come as 2D grayscale, RGB, RGBA or multichannel arrays of any dtype. Intensities are
mapped to [0, 1] (uint8 and bool by their natural range, everything else by percentiles or by
the contrast limits the caller gives, e.g. those of a napari layer), then normalised with the
ImageNet statistics and resized to the model's square input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_sansa.engine.errors import SansaError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_PERCENTILES = (1.0, 99.8)
MAX_CHANNELS = 5


@dataclass(frozen=True, eq=False)
class Image:
    """An image with the display settings that decide how it is shown to the model.

    Parameters
    ----------
    data
        ``(H, W)`` or ``(H, W, C)`` array (``C`` <= 5), or ``(C, H, W)`` with ``channel_axis=0``.
    contrast_limits
        ``(low, high)`` intensities mapped to black and white; default: percentiles
        (uint8 and bool images use their natural range).
    channel_axis
        Axis holding the channels, if any.
    channels
        Which channels to use as R, G, B (one channel = grayscale); default: the first three.
    """

    data: np.ndarray
    contrast_limits: tuple[float, float] | None = None
    channel_axis: int | None = None
    channels: Sequence[int] | None = None


@dataclass(frozen=True, eq=False)
class Multiscale:
    """A pyramid of one image: ``levels[0]`` at full resolution, each next level smaller.

    As napari's multiscale layers and OME-Zarr images hold them. Levels are any arrays with
    ``shape``, ``dtype`` and slicing (numpy, zarr, dask): only the windows a tile needs are read.
    The other parameters are those of :class:`Image`.
    """

    levels: Sequence[np.ndarray]
    contrast_limits: tuple[float, float] | None = None
    channel_axis: int | None = None
    channels: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if len(self.levels) == 0:
            raise SansaError("A multiscale image needs at least one level.")

    def level_image(self, level: int) -> Image:
        """One level as an :class:`Image` with the pyramid's display settings (not read yet)."""
        return Image(self.levels[level], self.contrast_limits, self.channel_axis, self.channels)


def as_image(image: Image | np.ndarray | Multiscale) -> Image:
    """Wrap a plain array as an :class:`Image` with default settings (a pyramid: its level 0)."""
    if isinstance(image, Image):
        return image
    if isinstance(image, Multiscale):
        return image.level_image(0)
    return Image(np.asarray(image))


@dataclass(frozen=True)
class Layout:
    """Where an array's rows, columns and channels are, checked from its shape and dtype alone
    (a zarr or dask array is not read): ``order`` is the axes that put channels last."""

    shape: tuple[int, ...]
    order: tuple[int, ...]

    @property
    def hw(self) -> tuple[int, int]:
        return self.shape[self.order[0]], self.shape[self.order[1]]

    @property
    def n_channels(self) -> int:
        return 1 if len(self.order) == 2 else self.shape[self.order[2]]

    def window(self, rows: slice, cols: slice) -> tuple[slice, ...]:
        """The index of a window of rows and columns, all channels."""
        index = [slice(None)] * len(self.order)
        index[self.order[0]], index[self.order[1]] = rows, cols
        return tuple(index)

    def channels_last(self, data: np.ndarray) -> np.ndarray:
        """``(h, w, C)`` of an array (or a window of it) in this layout."""
        if len(self.order) == 2:
            return data[..., None]
        return data if self.order[2] == 2 else np.moveaxis(data, self.order[2], -1)


def layout(data: object, channel_axis: int | None = None) -> Layout:
    """The checked layout of an image array (anything with ``shape`` and ``dtype``, or a list)."""
    if not (hasattr(data, "shape") and hasattr(data, "dtype")):
        data = np.asarray(data)
    shape = tuple(int(n) for n in data.shape)
    dtype = np.dtype(data.dtype)
    if dtype.kind not in "biuf":
        raise SansaError(f"Images must hold numbers, not {dtype}.")
    if len(shape) == 0 or 0 in shape:
        raise SansaError(f"The image is empty (shape {shape}).")
    ndim = len(shape)
    if channel_axis is not None:
        if ndim != 3:
            raise SansaError(
                f"channel_axis={channel_axis} was given, but the image has shape "
                f"{shape}; expected three axes (two spatial and one channel axis)."
            )
        axis = channel_axis % 3
        return Layout(shape, tuple(a for a in range(3) if a != axis) + (axis,))
    if ndim == 2:
        return Layout(shape, (0, 1))
    if ndim == 3 and shape[-1] <= MAX_CHANNELS:
        return Layout(shape, (0, 1, 2))
    if ndim == 3:
        raise SansaError(
            f"Expected a 2D image, got an array of shape {shape}: it looks like a stack "
            f"of {shape[0]} planes. Pass the planes one by one, or set channel_axis if "
            "one axis holds channels."
        )
    raise SansaError(f"Expected a 2D image (H, W) or (H, W, C), got shape {shape}.")


def channels_last(image: Image) -> np.ndarray:
    """``(H, W, C)``: all of an image's channels, in memory."""
    data = np.asarray(image.data)
    return layout(data, image.channel_axis).channels_last(data)


def image_hw(image: Image | np.ndarray | Multiscale) -> tuple[int, int]:
    """Height and width of an image, whatever its channel layout, without reading its pixels
    (a zarr or dask array stays on disk)."""
    if isinstance(image, Multiscale):
        image = image.level_image(0)
    elif not isinstance(image, Image):
        image = Image(image)  # not np.asarray: that would read a lazy array
    return layout(image.data, image.channel_axis).hw


def resolve_channels(n_channels: int, channels: Sequence[int] | None) -> tuple[int, ...]:
    """The one to three channels the model sees of an image with ``n_channels``: those chosen,
    else the first three (RGBA: without alpha)."""
    n = n_channels
    if channels is None:
        if n == 4:  # RGBA: the alpha channel is not part of the picture
            channels = (0, 1, 2)
        else:
            channels = tuple(range(min(n, 3)))
    channels = tuple(int(c) for c in channels)
    if not 1 <= len(channels) <= 3:
        raise SansaError(f"Choose one to three channels, got {list(channels)}.")
    bad = [c for c in channels if not -n <= c < n]
    if bad:
        raise SansaError(f"Channel(s) {bad} do not exist: the image has {n} channel(s).")
    return channels


def pick_channels(data: np.ndarray, channels: Sequence[int] | None) -> np.ndarray:
    """The channels the model sees of a channels-last array (see :func:`resolve_channels`)."""
    return data[..., list(resolve_channels(data.shape[-1], channels))]


def channel_limits(channel: np.ndarray, kind: str | None = None) -> tuple[float, float]:
    """The default contrast limits of one channel: the natural range of bool and uint8, else
    percentiles of its finite values (the full range when those coincide)."""
    kind = kind or channel.dtype.kind
    if kind == "b":
        return (0.0, 1.0)
    if kind == "u" and channel.dtype.itemsize == 1:
        return (0.0, 255.0)
    values = channel.astype(np.float32, copy=False)
    sample = values[np.isfinite(values)]
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = np.percentile(sample, DEFAULT_PERCENTILES)
    if high <= low:  # nearly constant: fall back to the full range
        low, high = float(sample.min()), float(sample.max())
    return (float(low), float(high))


def _rescale(channel: np.ndarray, limits: tuple[float, float] | None, kind: str) -> np.ndarray:
    values = channel.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if limits is None:
        limits = channel_limits(channel, kind)
    low, high = float(limits[0]), float(limits[1])
    if not (np.isfinite(low) and np.isfinite(high)):
        raise SansaError(f"Contrast limits must be finite numbers, got {limits}.")
    span = high - low
    if span <= 0:
        out = np.zeros(values.shape, np.float32)
        if np.isfinite(low):
            out[values > low] = 1.0
        return out
    out = (values - low) / span
    out = np.where(finite, out, np.where(np.isposinf(values), 1.0, 0.0))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def to_rgb01(
    image: Image | np.ndarray, per_channel: Sequence[tuple[float, float]] | None = None
) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB in [0, 1], as the model will see the image.

    ``per_channel`` gives each chosen channel its own limits (a tile of a large image is shown
    with the whole image's limits, so that neighbouring tiles look alike).
    """
    image = as_image(image)
    data = select_channels(image)
    kind = data.dtype.kind
    limits = [image.contrast_limits] * data.shape[-1] if per_channel is None else list(per_channel)
    planes = [_rescale(data[..., i], limits[i], kind) for i in range(data.shape[-1])]
    if len(planes) == 1:
        planes = planes * 3
    elif len(planes) == 2:
        planes = [planes[0], planes[1], np.zeros_like(planes[0])]
    return np.stack(planes, axis=-1)


def select_channels(image: Image) -> np.ndarray:
    """``(H, W, C)``: the channels the model will see, in memory."""
    return pick_channels(channels_last(image), image.channels)


def model_input(rgb01: np.ndarray, image_size: int, dtype=None):
    """``(1, 3, S, S)`` tensor in the model's dtype (default float32): ImageNet-normalised,
    antialiased bilinear resize (computed in float32)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(rgb01)).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x = ((x - mean) / std)[None]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return x if dtype is None else x.to(dtype)
