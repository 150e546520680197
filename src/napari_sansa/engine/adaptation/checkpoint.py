"""Write an adapted model's adapters in the published adapter checkpoint format.

``{"model": {"sam.image_encoder.trunk.blocks.<i>.adapter.<name>": tensor}}``, fp32, as the
published ``adapter_*.pth`` files hold them, so that every path that takes an adapter takes
it. What the adapters were adapted from and how they scored sits beside, under
``"sansa_adaptation"`` (plain numbers and strings), which loaders ignore. A model adapted with
``train="adapters+decoder"`` also writes SAM2's mask decoder (``sam.sam_mask_decoder.*``),
which the loader then puts in place of the SAM2 file's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.network.adapters import adapter_modules
from napari_sansa.engine.network.checkpoints import DECODER_PREFIX
from napari_sansa.engine.network.random_weights import ADAPTER_PREFIX

RECORD_KEY = "sansa_adaptation"


def adapter_state(sam: torch.nn.Module, with_decoder: bool = False) -> dict[str, torch.Tensor]:
    """The adapters' tensors (and the mask decoder's, if asked) under the published keys, fp32."""
    state = {
        ADAPTER_PREFIX.format(index) + name: tensor.detach().float().cpu().clone()
        for index, adapter in adapter_modules(sam).items()
        for name, tensor in adapter.state_dict().items()
    }
    if with_decoder:
        state.update(
            {
                DECODER_PREFIX + name: tensor.detach().float().cpu().clone()
                for name, tensor in sam.sam_mask_decoder.state_dict().items()
            }
        )
    return state


def save_adapter(model, path: str | os.PathLike, *, reference_set: str = "") -> Path:
    """Write ``model``'s adapters to ``path`` (``.pth``), with the adaptation's record."""
    path = Path(path).expanduser()
    report = model.adaptation
    with_decoder = report is not None and report.trained == "adapters+decoder"
    record = {
        "base_adapter": str(model.info.adapter_checkpoint),
        "sam2_checkpoint": str(model.info.sam2_checkpoint),
        "sam2_size": str(model.info.sam2_size),
        "reference_set": str(reference_set),
        "image_size": int(model.image_size),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(report.record() if report is not None else {}),
    }
    payload = {"model": adapter_state(model.sam, with_decoder), RECORD_KEY: record}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        torch.save(payload, partial)
        os.replace(partial, path)
    except OSError as exc:
        raise SansaError(f"Cannot write the adapter to {path}: {exc.strerror or exc}.") from None
    return path
