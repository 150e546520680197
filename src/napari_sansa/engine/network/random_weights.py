"""Random-weight checkpoints in the official file formats, for tests and offline demos.

They exercise every code path of a real model (loading, size and adapter inference,
propagation) but segment nothing meaningful.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from napari_sansa.engine.network.adapters import Adapter
from napari_sansa.engine.network.architecture import SAM2_SIZES, build_sam2

ADAPTER_PREFIX = "sam.image_encoder.trunk.blocks.{}.adapter."


def adapted_blocks(sam: torch.nn.Module, stages: Sequence[int]) -> list[int]:
    """Indices of the Hiera blocks in the given (0-based) stages."""
    trunk = sam.image_encoder.trunk
    ends = list(trunk.stage_ends)
    starts = [0] + [e + 1 for e in ends[:-1]]
    return [i for s in stages for i in range(starts[s], ends[s] + 1)]


def random_adapters(
    sam: torch.nn.Module, stages: Sequence[int] = (2, 3), channel_factor: float = 0.3
) -> dict:
    """Adapter tensors in the published checkpoint's key format, with non-zero up-projections."""
    adapters = {}
    blocks = sam.image_encoder.trunk.blocks
    for index in adapted_blocks(sam, stages):
        block = blocks[index]
        adapter = Adapter(block.dim_out, int(block.dim * channel_factor))
        torch.nn.init.normal_(adapter.up_proj.weight, std=0.05)  # published adapters are not zero
        for name, tensor in adapter.state_dict().items():
            adapters[ADAPTER_PREFIX.format(index) + name] = tensor
    return adapters


def random_sansa_module(size: str = "tiny", image_size: int = 1024, seed: int = 0) -> torch.nn.Module:
    """A random-weight SAM2 with SANSA adapters attached, built in memory (for benchmarks)."""
    from napari_sansa.engine.network.adapters import (
        adapter_modules,
        adapter_tensors,
        attach_adapters,
        infer_layout,
    )

    torch.manual_seed(seed)
    sam = build_sam2(SAM2_SIZES[size], image_size)
    grouped = adapter_tensors(random_adapters(sam))
    attach_adapters(sam, infer_layout(grouped, "random"), size, "random")
    for index, adapter in adapter_modules(sam).items():
        adapter.load_state_dict(grouped[index])
    return sam


def write_random_checkpoints(
    directory: str | os.PathLike,
    size: str = "tiny",
    stages: Sequence[int] = (2, 3),
    channel_factor: float = 0.3,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write ``sam2_hiera_<size>_random.pt`` and ``adapter_<size>_random.pth``; return both paths."""
    torch.manual_seed(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sam = build_sam2(SAM2_SIZES[size])
    sam2_path = directory / f"sam2_hiera_{size}_random.pt"
    torch.save({"model": sam.state_dict()}, sam2_path)
    adapter_path = directory / f"adapter_{size}_random.pth"
    torch.save({"model": random_adapters(sam, stages, channel_factor)}, adapter_path)
    return sam2_path, adapter_path
