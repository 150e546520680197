"""The command line's options for large targets (``--tile-size``, ``--overlap``, ``--scale``,
``--format``), checked; what they do is the pipeline's (:mod:`napari_sansa.pipeline.large`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.lazy_inputs import is_zarr_path


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--tile-size``, ``--overlap``, ``--scale`` and ``--format`` of ``segment``."""
    group = parser.add_argument_group("large images")
    group.add_argument(
        "--tile-size",
        default="auto",
        metavar="PX|auto|none",
        help="segment large images in tiles of this many working pixels; auto (default): tiles of the "
        "model input size for images a whole-image resize would shrink more than 2x; none: resize whole",
    )
    group.add_argument(
        "--overlap", type=int, default=128, help="pixels shared by neighbouring tiles (default 128)"
    )
    group.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="working resolution relative to the pixels (default 1.0; 0.5: half)",
    )
    group.add_argument(
        "--format",
        choices=["auto", "tif"],
        default="auto",
        help="labels of large (tiled or OME-Zarr) targets: auto (default): OME-Zarr (beside the image "
        "in an input OME-Zarr store); tif: tiled BigTIFF in --out",
    )


def tile_options(args: argparse.Namespace):
    """The engine's TileOptions the flags give, checked (a SansaError says what is wrong)."""
    from napari_sansa.engine.runs.tiling import TileOptions

    raw = str(args.tile_size).strip().lower()
    if raw == "none":
        size: int | str | None = None
    elif raw == "auto":
        size = "auto"
    else:
        try:
            size = int(raw)
        except ValueError:
            raise SansaError(
                f"--tile-size must be a number of pixels, auto or none; got {args.tile_size!r}."
            ) from None
    return TileOptions(tile_size=size, overlap=args.overlap, scale=args.scale).check()


def refuse_on_cluster(args: argparse.Namespace, targets: Sequence[Path]) -> None:
    """The cluster runner reads image files whole with the default tiling: zarr stores and the
    large-image flags are for the single-process run."""
    stores = [t for t in targets if is_zarr_path(t)]
    if stores:
        raise SansaError(f"{stores[0]} is a zarr store; segment zarr stores without --cluster/--scheduler.")
    if getattr(args, "export", None):
        raise SansaError(
            "--export applies to runs without --cluster/--scheduler; export from the label files with a "
            "second run on one machine, or drop --export."
        )
    defaults = {"tile_size": "auto", "overlap": 128, "scale": 1.0, "format": "auto"}
    flags = [
        "--" + name.replace("_", "-") for name, value in defaults.items() if getattr(args, name) != value
    ]
    if flags:
        raise SansaError(f"{', '.join(flags)} apply to runs without --cluster/--scheduler.")
