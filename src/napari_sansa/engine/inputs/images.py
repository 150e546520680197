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


def _check_layout(shape: tuple[int, ...], dtype: np.dtype, channel_axis: int | None) -> tuple[int, ...]:
    """The axes order that puts channels last, after checking the array's shape and dtype."""
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
        return tuple(a for a in range(3) if a != axis) + (axis,)
    if ndim == 2:
        return (0, 1)
    if ndim == 3 and shape[-1] <= MAX_CHANNELS:
        return (0, 1, 2)
    if ndim == 3:
        raise SansaError(
            f"Expected a 2D image, got an array of shape {shape}: it looks like a stack "
            f"of {shape[0]} planes. Pass the planes one by one, or set channel_axis if "
            "one axis holds channels."
        )
    raise SansaError(f"Expected a 2D image (H, W) or (H, W, C), got shape {shape}.")


def _channels_last(image: Image) -> np.ndarray:
    data = np.asarray(image.data)
    order = _check_layout(data.shape, data.dtype, image.channel_axis)
    if len(order) == 2:
        return data[..., None]
    return data if order == (0, 1, 2) else np.moveaxis(data, image.channel_axis, -1)


def _lazy_data(image: Image) -> object:
    data = image.data
    return data if hasattr(data, "shape") and hasattr(data, "dtype") else np.asarray(data)


def image_hw(image: Image | np.ndarray | Multiscale) -> tuple[int, int]:
    """Height and width of an image, whatever its channel layout, without reading its pixels
    (a zarr or dask array stays on disk)."""
    if isinstance(image, Multiscale):
        image = image.level_image(0)
    elif not isinstance(image, Image):
        image = Image(image)
    data = _lazy_data(image)
    shape = tuple(int(n) for n in data.shape)
    order = _check_layout(shape, np.dtype(data.dtype), image.channel_axis)
    return shape[order[0]], shape[order[1]]


def _select_channels(data: np.ndarray, channels: Sequence[int] | None) -> np.ndarray:
    n = data.shape[-1]
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
    return data[..., list(channels)]


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
    return _select_channels(_channels_last(image), image.channels)


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
