"""Assemble SANSA from the official SAM2 checkpoint and a SANSA adapter checkpoint.

Sizes are read from the files (SAM2's patch width and block count, the adapted blocks and
their bottlenecks), every file is read with ``weights_only=True``, and every mismatch is a
:class:`SansaError` that names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.network import checkpoints
from napari_sansa.engine.network.adapters import (
    adapter_modules,
    attach_adapters,
    block_input_widths,
    infer_layout,
)
from napari_sansa.engine.network.architecture import build_sam2, infer_sam2_size


@dataclass(frozen=True)
class ModelInfo:
    """What a model was built from, for the record of a run."""

    sam2_size: str
    adapter_blocks: tuple[int, ...]
    channel_factor: float
    sam2_checkpoint: str = ""
    adapter_checkpoint: str = ""
    name: str = ""


def assemble(
    sam2_checkpoint: str | os.PathLike, adapter_checkpoint: str | os.PathLike, image_size: int, name: str = ""
) -> tuple[torch.nn.Module, ModelInfo]:
    """SAM2 with its weights and the adapters with theirs, and what it was built from."""
    sam2_source = f"SAM2 checkpoint {Path(sam2_checkpoint).name}"
    adapter_source = f"adapter checkpoint {Path(adapter_checkpoint).name}"
    sam2_state = checkpoints.sam2_weights(
        checkpoints.read_state_dict(sam2_checkpoint, "SAM2 checkpoint"), sam2_source
    )
    size = infer_sam2_size(sam2_state, sam2_source)
    adapter_state = checkpoints.read_state_dict(adapter_checkpoint, "SANSA adapter")
    grouped = checkpoints.adapter_weights(adapter_state, adapter_source)
    layout = infer_layout(grouped, adapter_source)
    sam = build_sam2(size, image_size)
    checkpoints.load_sam2_weights(sam, sam2_state, sam2_source)
    del sam2_state
    attach_adapters(sam, layout, size.name, adapter_source)
    for index, adapter in adapter_modules(sam).items():
        try:
            adapter.load_state_dict(grouped[index], strict=True)
        except RuntimeError as exc:
            raise SansaError(
                f"{adapter_source}: the adapter of block {index} does not fit "
                f"({str(exc).splitlines()[-1].strip()})."
            ) from None
    checkpoints.load_adapted_decoder(sam, adapter_state, adapter_source)
    info = ModelInfo(
        sam2_size=size.name,
        adapter_blocks=tuple(layout.blocks),
        channel_factor=layout.channel_factor(block_input_widths(sam)),
        sam2_checkpoint=str(sam2_checkpoint),
        adapter_checkpoint=str(adapter_checkpoint),
        name=name,
    )
    return sam, info
