"""Read SAM2 and SANSA adapter checkpoints safely, and say clearly what is wrong with a bad one.

Files are only ever read with ``torch.load(weights_only=True)``: a file that would need to run
code to load is refused.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.network.adapters import adapter_tensors
from napari_sansa.engine.network.architecture import TRUNK_PREFIX

log = logging.getLogger(__name__)

# Present in the official SAM2 files but unused with SANSA's settings.
IGNORED_SAM2_KEYS = ("sam_mask_decoder.pred_obj_score_head.", "no_obj_ptr")
SAM2_1_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.")


def _strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def read_state_dict(path: str | os.PathLike, role: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (``{"model": state_dict}`` or a bare state dict)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SansaError(f"The {role} file {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise SansaError(
                f"Refused to load the {role} file {path}: it contains Python objects besides "
                "weights, and loading it could run code. Use the official checkpoint."
            ) from None
        raise SansaError(f"The {role} file {path} is not a PyTorch checkpoint ({exc}).") from None
    except Exception as exc:  # garbage bytes raise anything from IndexError to RuntimeError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SansaError(
            f"The {role} file {path} cannot be read as a PyTorch checkpoint: it may be "
            f"truncated (an interrupted download?) or another kind of file ({reason})."
        ) from None
    state = payload.get("model", payload) if isinstance(payload, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise SansaError(f"The {role} file {path} holds no model weights.")
    state = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not state:
        raise SansaError(f"The {role} file {path} holds no tensors.")
    state = _strip_prefix(state, "module.")
    return state


def sam2_weights(state_dict: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The SAM2 tensors of a checkpoint, after checking that it is one."""
    state = _strip_prefix(state_dict, "sam.")
    has_trunk = any(key.startswith(TRUNK_PREFIX) and ".adapter." not in key for key in state)
    if not has_trunk and adapter_tensors(state_dict):
        raise SansaError(
            f"{source} holds SANSA adapter weights only. Give it as the adapter checkpoint, "
            "and the SAM2 file (e.g. sam2_hiera_large.pt) as the SAM2 checkpoint."
        )
    if not has_trunk:
        raise SansaError(f"{source} is not a SAM2 checkpoint: it has no image encoder weights.")
    if any(key.startswith(SAM2_1_KEYS) for key in state):
        log.warning(
            "%s looks like a SAM2.1 checkpoint; the published SANSA adapters were trained on "
            "SAM2.0 (July 2024) weights, so results may be worse.",
            source,
        )
    return state


def load_sam2_weights(sam: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load SAM2 weights, refusing a file that lacks part of the model."""
    try:
        missing, unexpected = sam.load_state_dict(dict(state_dict), strict=False)
    except RuntimeError as exc:
        raise SansaError(
            f"{source} does not fit the SAM2 architecture inferred from it: "
            f"{str(exc).splitlines()[-1].strip()}"
        ) from None
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise SansaError(f"{source} lacks {len(missing)} SAM2 weights ({shown}); is the file complete?")
    unknown = [k for k in unexpected if not k.startswith(IGNORED_SAM2_KEYS + SAM2_1_KEYS)]
    if unknown:
        log.info("%s: ignored %d weights SANSA does not use, e.g. %s", source, len(unknown), unknown[0])


def adapter_weights(
    state_dict: Mapping[str, torch.Tensor], source: str
) -> dict[int, dict[str, torch.Tensor]]:
    """The adapter tensors of an adapter checkpoint, grouped by Hiera block."""
    grouped = adapter_tensors(state_dict)
    if not grouped:
        if any(key.startswith(TRUNK_PREFIX) or key.startswith("sam." + TRUNK_PREFIX) for key in state_dict):
            raise SansaError(
                f"{source} is a SAM2 checkpoint, not a SANSA adapter. Give it as the SAM2 "
                "checkpoint and the SANSA adapter file (e.g. adapter_universal.pth) as the adapter."
            )
        raise SansaError(f"{source} holds no SANSA adapter weights.")
    return grouped


DECODER_PREFIX = "sam.sam_mask_decoder."


def load_adapted_decoder(sam: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Put the mask decoder an adapter file carries (adapted with ``train="adapters+decoder"``)
    in place of SAM2's; published adapter files carry none, and nothing changes."""
    prefix = next(
        (
            p
            for p in (DECODER_PREFIX, DECODER_PREFIX[len("sam.") :])
            if any(k.startswith(p) for k in state_dict)
        ),
        None,
    )
    if prefix is None:
        return
    decoder = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    try:
        sam.sam_mask_decoder.load_state_dict(decoder, strict=True)
    except RuntimeError as exc:
        raise SansaError(
            f"{source}: its mask decoder does not fit this SAM2 ({str(exc).splitlines()[-1].strip()})."
        ) from None
    log.info("%s: SAM2's mask decoder replaced by the adapted one it carries", source)
