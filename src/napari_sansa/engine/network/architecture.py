"""Build SAM2 (from the `sam2` package's SAM2.0 Hiera configs) the way SANSA uses it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from napari_sansa.engine.errors import SansaError

TRUNK_PREFIX = "image_encoder.trunk."


@dataclass(frozen=True)
class Sam2Size:
    """One SAM2.0 Hiera size: its config file and what identifies it in a checkpoint."""

    name: str
    config: str
    embed_dim: int
    depth: int


SAM2_SIZES: dict[str, Sam2Size] = {
    s.name: s
    for s in (
        Sam2Size("tiny", "sam2_hiera_t.yaml", 96, 12),
        Sam2Size("small", "sam2_hiera_s.yaml", 96, 16),
        Sam2Size("base_plus", "sam2_hiera_b+.yaml", 112, 24),
        Sam2Size("large", "sam2_hiera_l.yaml", 144, 48),
    )
}


def count_trunk_blocks(state_dict: Mapping[str, object], prefix: str = TRUNK_PREFIX) -> int:
    """Number of Hiera blocks with weights in a state dict."""
    indices = {
        int(key[len(prefix) + len("blocks.") :].split(".", 1)[0])
        for key in state_dict
        if key.startswith(prefix + "blocks.")
    }
    return max(indices) + 1 if indices else 0


def infer_sam2_size(state_dict: Mapping[str, object], source: str) -> Sam2Size:
    """Which SAM2 size a checkpoint holds, from its patch width and number of Hiera blocks."""
    pos_embed = state_dict.get(TRUNK_PREFIX + "pos_embed")
    if pos_embed is None or getattr(pos_embed, "ndim", 0) != 4:
        raise SansaError(
            f"{source} is not a SAM2 checkpoint: it has no Hiera image encoder "
            f"('{TRUNK_PREFIX}pos_embed' is missing)."
        )
    embed_dim = int(pos_embed.shape[1])
    depth = count_trunk_blocks(state_dict)
    for size in SAM2_SIZES.values():
        if (size.embed_dim, size.depth) == (embed_dim, depth):
            return size
    known = ", ".join(f"{s.name} ({s.embed_dim} wide, {s.depth} blocks)" for s in SAM2_SIZES.values())
    raise SansaError(
        f"{source} holds a Hiera encoder {embed_dim} wide with {depth} blocks, which is no "
        f"SAM2 size SANSA supports: {known}."
    )


def build_sam2(size: Sam2Size, image_size: int = 1024):
    """A SAM2Base with random weights, configured as SANSA configures it."""
    import sam2
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    if image_size % 32 != 0 or image_size < 64:
        raise SansaError(f"The model input size must be a multiple of 32 and at least 64, got {image_size}.")
    config_file = resources.files(sam2) / "configs" / "sam2" / size.config
    cfg = OmegaConf.load(str(config_file))
    model_cfg = cfg.model
    # SANSA's settings: no object-score head, no fixed no-object pointer.
    model_cfg.pred_obj_scores = False
    model_cfg.pred_obj_scores_mlp = False
    model_cfg.fixed_no_obj_ptr = False
    model_cfg.image_size = image_size
    OmegaConf.resolve(cfg)
    sam = instantiate(model_cfg, _recursive_=True)
    return sam.eval()
