"""Options shared by the commands: the model, the references and the targets, read from arguments."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from napari_sansa import environment
from napari_sansa.engine.config import DEVICES, PRECISIONS, SansaConfig
from napari_sansa.engine.errors import SansaError

SAM2_ENV = environment.SAM2_CHECKPOINT
ADAPTER_ENV = environment.ADAPTER_CHECKPOINT
EXIT_USAGE = 2
"""The exit status of a run that a user can fix: bad input, or targets that were skipped."""


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help="published model name (default: universal)")
    group.add_argument("--sam2", type=Path, default=None, help=f"local SAM2 checkpoint (or ${SAM2_ENV})")
    group.add_argument(
        "--adapter", type=Path, default=None, help=f"local SANSA adapter checkpoint (or ${ADAPTER_ENV})"
    )
    group.add_argument("--cache-dir", type=Path, default=None, help="where published models are kept")
    group.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default: auto)")
    group.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto (default): bf16 where the hardware runs it natively (CUDA >= 8.0, CPUs with AMX or "
        "AVX512-BF16), else fp32",
    )
    group.add_argument(
        "--image-size", type=int, default=1024, help="model input side (default 1024, as trained)"
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile the image encoder with torch.compile first (costs time once; pays over many images)",
    )
    group.add_argument(
        "--memory-gb",
        type=float,
        default=None,
        help="memory for cached image features (default: an eighth of RAM, at most 1)",
    )
    group.add_argument(
        "--disk-cache-gb",
        type=float,
        default=None,
        help="disk for features beyond --memory-gb, in fp16 (default: a quarter of free space, "
        "at most 16; 0: none, recompute)",
    )
    group.add_argument(
        "--batch-size", type=int, default=None, help="targets per encoder pass (default: 8 on CUDA, else 1)"
    )


def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server (napari-sansa serve on another machine)")
    group.add_argument(
        "--server",
        metavar="tls://HOST:PORT",
        default=None,
        help="compute on a SANSA server: images are sent to it, outputs written here",
    )
    group.add_argument(
        "--credentials",
        type=Path,
        metavar="DIR",
        default=None,
        help="the server's client credentials (a copy of its credentials folder's client/)",
    )


def gigabytes_to_bytes(gigabytes: float | None, option: str) -> int | None:
    if gigabytes is None:
        return None
    if not gigabytes >= 0:
        raise SansaError(f"{option} must be a number of GB, 0 or more; got {gigabytes}.")
    return int(gigabytes * 2**30)


def model_choice(args: argparse.Namespace) -> tuple[SansaConfig, Path | None, Path | None]:
    """The run config and the local checkpoints the options name (both None: a published model)."""
    config = SansaConfig(
        device=args.device,
        precision=args.precision,
        image_size=args.image_size,
        cache_bytes=gigabytes_to_bytes(args.memory_gb, "--memory-gb"),
        disk_cache_bytes=gigabytes_to_bytes(args.disk_cache_gb, "--disk-cache-gb"),
        batch_size=args.batch_size,
        compile=args.compile,
    )
    sam2 = args.sam2 or (Path(os.environ[SAM2_ENV]) if os.environ.get(SAM2_ENV) else None)
    adapter = args.adapter or (Path(os.environ[ADAPTER_ENV]) if os.environ.get(ADAPTER_ENV) else None)
    if args.model is None and (sam2 or adapter):
        if not (sam2 and adapter):
            raise SansaError("Give both --sam2 and --adapter (or neither, to use a published model).")
        return config, sam2, adapter
    return config, None, None


def load_model(args: argparse.Namespace):
    """The model the options ask for: on a server (``--server``), else local files, else a
    published model."""
    if getattr(args, "server", None):
        return _remote_model(args)
    from napari_sansa.engine.model import Sansa

    config, sam2, adapter = model_choice(args)
    if sam2 and adapter:
        return Sansa.from_checkpoints(sam2, adapter, config=config)
    return Sansa.from_pretrained(args.model or "universal", cache_dir=args.cache_dir, config=config)


def _remote_model(args: argparse.Namespace):
    from napari_sansa.distributed import check_address, connect

    if getattr(args, "cluster", None) or getattr(args, "scheduler", None):
        raise SansaError("Give --server or --cluster/--scheduler, not both.")
    check_address(args.server)
    if args.credentials is None:
        raise SansaError(
            "--server needs --credentials DIR: a copy of the server's credentials folder's client/."
        )
    return connect(args.server, args.credentials)


def reference_inputs(args: argparse.Namespace):
    """The references the options give, the files they were read from (not targets), class names and notes."""
    from napari_sansa.cli.references import gather_references

    return gather_references(
        args.reference or [], args.references or [], args.mask_classes, args.class_name or []
    )


def target_paths(args: argparse.Namespace, skip: set[Path]) -> list[Path]:
    """Target image files from the files and folders given, minus the reference files."""
    from napari_sansa.files.images import expand_image_paths
    from napari_sansa.files.outputs import expand_inputs

    targets = [p for p in expand_image_paths(expand_inputs(args.targets)) if p.resolve() not in skip]
    if not targets:
        raise SansaError("No target images: give image files or folders besides the references.")
    return targets
