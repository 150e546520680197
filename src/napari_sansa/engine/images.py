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

from .errors import SansaError

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


def as_image(image: Image | np.ndarray) -> Image:
    """Wrap a plain array as an :class:`Image` with default settings."""
    if isinstance(image, Image):
        return image
    return Image(np.asarray(image))


def _channels_last(image: Image) -> np.ndarray:
    data = np.asarray(image.data)
    if data.dtype == object or data.dtype.kind not in "biuf":
        raise SansaError(f"Images must hold numbers, not {data.dtype}.")
    if data.size == 0 or 0 in data.shape:
        raise SansaError(f"The image is empty (shape {data.shape}).")
    if image.channel_axis is not None:
        if data.ndim != 3:
            raise SansaError(
                f"channel_axis={image.channel_axis} was given, but the image has shape "
                f"{data.shape}; expected three axes (two spatial and one channel axis)."
            )
        return np.moveaxis(data, image.channel_axis, -1)
    if data.ndim == 2:
        return data[..., None]
    if data.ndim == 3 and data.shape[-1] <= MAX_CHANNELS:
        return data
    if data.ndim == 3:
        raise SansaError(
            f"Expected a 2D image, got an array of shape {data.shape}: it looks like a stack "
            f"of {data.shape[0]} planes. Pass the planes one by one, or set channel_axis if "
            "one axis holds channels."
        )
    raise SansaError(f"Expected a 2D image (H, W) or (H, W, C), got shape {data.shape}.")


def image_hw(image: Image | np.ndarray) -> tuple[int, int]:
    """Height and width of an image, whatever its channel layout."""
    data = _channels_last(as_image(image))
    return int(data.shape[0]), int(data.shape[1])


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


def _rescale(channel: np.ndarray, limits: tuple[float, float] | None, kind: str) -> np.ndarray:
    values = channel.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if limits is None:
        if kind == "b":
            limits = (0.0, 1.0)
        elif kind == "u" and channel.dtype.itemsize == 1:
            limits = (0.0, 255.0)
        elif finite.any():
            sample = values[finite]
            low, high = np.percentile(sample, DEFAULT_PERCENTILES)
            if high <= low:  # nearly constant: fall back to the full range
                low, high = float(sample.min()), float(sample.max())
            limits = (float(low), float(high))
        else:
            limits = (0.0, 1.0)
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


def to_rgb01(image: Image | np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB in [0, 1], as the model will see the image."""
    image = as_image(image)
    data = _select_channels(_channels_last(image), image.channels)
    kind = data.dtype.kind
    limits = image.contrast_limits
    planes = [_rescale(data[..., i], limits, kind) for i in range(data.shape[-1])]
    if len(planes) == 1:
        planes = planes * 3
    elif len(planes) == 2:
        planes = [planes[0], planes[1], np.zeros_like(planes[0])]
    return np.stack(planes, axis=-1)


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
