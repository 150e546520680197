"""Run settings shared by the Python API, the CLI and the widget."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Literal

from napari_sansa.engine.errors import SansaError
from napari_sansa.environment import MPS_FALLBACK

Precision = Literal["auto", "fp32", "bf16"]
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class SansaConfig:
    """How a model runs.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA, then Apple MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    precision
        ``"auto"`` (bf16 where the hardware runs it natively, else fp32: see
        :func:`resolve_precision`), ``"fp32"`` or ``"bf16"`` (weights cast to bf16 once, the numerically sensitive
        parts kept in fp32: see :mod:`napari_sansa.engine.network.precision`). A model built with
        ``"auto"`` keeps the decision in its ``config``.
    image_size
        Side of the square model input; SAM2 and SANSA were trained at 1024.
    threshold
        A pixel belongs to a class where its logit is above this.
    cache_bytes
        Byte budget of the in-memory feature cache (``None``: an eighth of the device's
        memory, at most 1 GiB). Features beyond it move to the disk cache, oldest first.
    disk_cache_bytes
        Byte budget of the disk cache for features beyond ``cache_bytes``, kept in fp16
        (``None``: a quarter of the free disk space, at most 16 GiB; ``0``: no disk cache, such
        features are recomputed if needed again).
    disk_cache_dir
        Where the disk cache lives (``None``: ``features`` in the weights' cache directory).
    batch_size
        Targets encoded and decoded together (``None``: 8 on CUDA, 1 elsewhere, where batches
        bring no speed and delay the first result).
    compile
        Compile the image encoder with ``torch.compile`` when the model is built (off by
        default: it costs time once per process and pays only over many images; the model's
        ``compile_seconds`` says how long it took). Where it cannot work, a warning, and the
        encoder runs uncompiled.
    """

    device: str = "auto"
    precision: Precision = "auto"
    image_size: int = 1024
    threshold: float = 0.0
    cache_bytes: int | None = None
    disk_cache_bytes: int | None = None
    disk_cache_dir: str | None = None
    batch_size: int | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise SansaError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.device.split(":")[0] not in DEVICES:
            raise SansaError(f"Unknown device {self.device!r}: use one of {', '.join(DEVICES)}.")
        if not isinstance(self.compile, bool):
            raise SansaError(f"compile must be True or False, got {self.compile!r}.")
        if self.precision not in PRECISIONS:
            raise SansaError(f"Unknown precision {self.precision!r}: use auto, fp32 or bf16.")


# Operations SAM2 and napari-sansa run that PyTorch's Apple GPU (MPS) backend lacks in some of
# the versions napari-sansa supports; with PYTORCH_ENABLE_MPS_FALLBACK=1 they run on the CPU
# instead of stopping the run with NotImplementedError.
MPS_CPU_FALLBACK_OPS = (
    "aten::upsample_bicubic2d.out",  # SAM2's Hiera resizes its position embedding (bicubic)
    "aten::_upsample_bilinear2d_aa.out",  # antialiased resizes: model input, masks, memory encoder
    "aten::_upsample_bilinear2d_aa_backward.grad_input",  # the same, while adapting
)
# SAM2's CUDA extension (sam2._C: holes filled in masks) does not exist on Apple GPUs; SAM2
# skips that step with a warning, and napari-sansa does not use it.


def allow_mps_fallback() -> None:
    """On macOS, let operations MPS lacks (:data:`MPS_CPU_FALLBACK_OPS`) run on the CPU.

    PyTorch reads the variable once, when it loads: this runs when the engine is imported,
    before torch. A value the user set is kept.
    """
    if sys.platform == "darwin":
        os.environ.setdefault(MPS_FALLBACK, "1")


def mps_available() -> bool:
    """Whether PyTorch sees an Apple GPU (Metal Performance Shaders)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str):
    """The torch device for a device name, checking that it exists."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise SansaError("device='cuda' was asked for, but PyTorch sees no CUDA GPU; use 'cpu' or 'auto'.")
    if kind == "mps" and not mps_available():
        raise SansaError("device='mps' was asked for, but Apple MPS is not available; use 'cpu' or 'auto'.")
    return torch.device(name)


def mps_runs_bf16(device) -> bool:
    """Whether this Apple GPU holds bf16 tensors (macOS 14 and later)."""
    import torch

    try:
        torch.zeros(1, dtype=torch.bfloat16, device=device)
    except (RuntimeError, TypeError):
        return False
    return True


def native_bf16(device) -> bool:
    """Whether the device multiplies bf16 matrices natively: CUDA from compute capability 8.0
    (Ampere), x86 CPUs with AMX or AVX512-BF16. Elsewhere (older GPUs and CPUs, Apple silicon's
    CPU and GPU) bf16 is emulated or converted and no faster than fp32."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(device, precision: Precision) -> Precision:
    """The precision a model runs at: ``"auto"`` becomes bf16 where it is native, else fp32.

    On Apple GPUs (MPS) "auto" is fp32, which SAM2's own examples run there; bf16, when asked
    for, only where MPS has it (macOS 14 and later). fp16 is not offered anywhere: SAM2 was
    trained in bf16, whose range fp16 lacks."""
    if device.type == "mps" and precision == "bf16" and not mps_runs_bf16(device):
        raise SansaError("bf16 on an Apple GPU needs macOS 14 or later; use precision 'fp32' or 'auto'.")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"
