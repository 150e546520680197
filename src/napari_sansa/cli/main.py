"""Command line: ``napari-sansa segment``, ``evaluate``, ``download``, ``models`` and the rest.

User-facing problems print one line and exit with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_sansa.cli.adapt import adapt as adapt_command
from napari_sansa.cli.adapt import add_parser as add_adapt_parser
from napari_sansa.cli.evaluate import evaluate as evaluate_command
from napari_sansa.cli.large import add_options as add_large_options
from napari_sansa.cli.options import EXIT_USAGE, add_model_options, add_server_options
from napari_sansa.cli.segment import segment as segment_command
from napari_sansa.cli.serve import add_parser as add_serve_parser
from napari_sansa.cli.serve import serve as serve_command
from napari_sansa.engine.errors import OutputExists, SansaError
from napari_sansa.engine.objects import OBJECT_METHODS

REPLACE_FLAGS = {  # what each command's user can do about files that exist (OutputExists)
    "segment": "Add --resume to keep what is complete, or --overwrite to replace them.",
    "evaluate": "Add --overwrite to replace them, or choose another --out.",
    "adapt": "Add --overwrite to replace it, or choose another --out.",
}


def _add_reference_options(parser: argparse.ArgumentParser) -> None:
    """Where a run's references come from, and its classes' names."""
    parser.add_argument(
        "--reference",
        "-r",
        action="append",
        metavar="IMAGE:MASK",
        help="a reference image and its label image; repeat for k shots",
    )
    parser.add_argument(
        "--references",
        action="append",
        type=Path,
        metavar="SET",
        help="a reference set folder (saved by the widget's Export… or napari_sansa.save_references)",
    )
    parser.add_argument(
        "--mask-classes",
        choices=["auto", "each", "one"],
        default="auto",
        help="each nonzero mask value is a class (each), or all are objects of one class (one: instance "
        "masks); auto: each for at most 5 values (default)",
    )
    parser.add_argument(
        "--class-name",
        action="append",
        metavar="ID=NAME",
        help="name a class (repeatable); the names go to classes.csv in --out",
    )


def _add_run_options(parser: argparse.ArgumentParser, targets: str = "+") -> None:
    """The options of a run over targets, shared by ``segment`` and ``evaluate``."""
    _add_reference_options(parser)
    parser.add_argument(
        "targets",
        nargs=targets,
        type=Path,
        help="target image files, folders, quoted glob patterns ('plate/**/*.tif') or @list.txt "
        "(one path a line)",
    )
    parser.add_argument("--out", "-o", type=Path, required=True, help="folder for the label images")
    parser.add_argument(
        "--sequential", action="store_true", help="targets are a time series: remember each prediction"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace label images that already exist")
    parser.add_argument(
        "--instances",
        choices=OBJECT_METHODS,
        default=None,
        help="also write each object's own label (<name>_objects.tif) and a table of them "
        "(<name>_objects.csv): touching objects split by a watershed, or outlined by SAM2",
    )
    parser.add_argument(
        "--export",
        metavar="geojson,coco",
        default=None,
        help="also write the objects (with --instances) or class regions for other tools: geojson: "
        "<name>_objects.geojson per image for QuPath; coco: one coco.json in --out; both: geojson,coco",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip targets whose label image exists and is complete; do only the rest",
    )
    add_large_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sansa", description="Few-shot segmentation with SANSA (SAM2 + adapters)."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser("segment", help="label target images like the annotated references")
    _add_run_options(segment)
    cluster = segment.add_argument_group("cluster (Dask distributed)")
    cluster.add_argument(
        "--cluster", metavar="local:N", help="run on N worker processes of this machine, one thread each"
    )
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the workers of a running Dask scheduler: its address (tcp://node1:8786) or its "
        "scheduler file (dask-jobqueue on SLURM/PBS, dask_cuda.LocalCUDACluster, ...); the weights and "
        "images must be readable at the same paths there",
    )
    add_model_options(segment)
    add_server_options(segment)
    add_adapt_parser(commands)
    _add_evaluate_parser(commands)
    _add_tool_parsers(commands)
    return parser


def _add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="segment targets as segment does and score them against true label images "
        "(or score each reference, predicted from the others)",
    )
    _add_run_options(evaluate, targets="*")
    evaluate.add_argument(
        "--truth",
        type=Path,
        metavar="DIR",
        help="folder of the true label images: <stem>.<ext> or <stem>_labels|_mask|_masks.<ext> per "
        "target, read with the --mask-classes rules",
    )
    evaluate.add_argument(
        "--leave-one-out",
        action="store_true",
        help="no targets: predict each reference that has a mask from the other references and score it "
        "against its mask",
    )
    add_model_options(evaluate)
    add_server_options(evaluate)
    add_serve_parser(commands)


def _add_tool_parsers(commands) -> None:
    """``download``, ``models``, ``gui``, ``sample-data`` and ``make-test-weights``."""
    download = commands.add_parser("download", help="download a published model ahead of time")
    download.add_argument("name", nargs="?", default="universal")
    download.add_argument("--cache-dir", type=Path, default=None)

    commands.add_parser("models", help="list the published models and where their files go")

    gui = commands.add_parser("gui", help="open napari with the SANSA widget (and sample images)")
    gui.add_argument("--sample", choices=["cells", "cells_stack", "drifting_cells", "none"], default="cells")
    gui.add_argument("files", nargs="*", type=Path, help="images to open")

    sample = commands.add_parser("sample-data", help="write generated sample images and a reference mask")
    sample.add_argument("folder", type=Path)
    sample.add_argument("--count", type=int, default=6)

    test_weights = commands.add_parser(
        "make-test-weights",
        help="write random-weight SAM2-tiny + adapter files (to try the plumbing offline)",
    )
    test_weights.add_argument("folder", type=Path)


def _download(args: argparse.Namespace) -> int:
    from napari_sansa.engine.network.weights import fetch_model

    sam2, adapter = fetch_model(args.name, cache_dir=args.cache_dir, progress=True)
    print(f"{args.name}: {sam2}\n{' ' * len(args.name)}  {adapter}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from napari_sansa.engine.network.weights import PUBLISHED, expected_paths

    for name, model in PUBLISHED.items():
        sam2, adapter = expected_paths(name)
        state = "downloaded" if sam2.is_file() and adapter.is_file() else "not downloaded"
        print(f"{name:11s} {model.description} [{state}]")
        print(f"{'':11s}   {model.sam2.page}\n{'':11s}     -> {sam2}")
        print(f"{'':11s}   {model.adapter.page}\n{'':11s}     -> {adapter}")
    return 0


def _sample_data(args: argparse.Namespace) -> int:
    from napari_sansa.files.images import ensure_writable_folder, write_labels
    from napari_sansa.samples import cells

    folder = ensure_writable_folder(args.folder)
    (folder / "images").mkdir(exist_ok=True)
    import imageio.v3 as iio

    for i, (image, labels) in enumerate(cells(max(args.count, 2))):
        iio.imwrite(folder / "images" / f"cells_{i:02d}.png", image)
        if i == 0:
            write_labels(folder / "cells_00_mask.png", labels, overwrite=True)
    print(
        f"Wrote {max(args.count, 2)} images to {folder / 'images'} and the reference mask {folder / 'cells_00_mask.png'}"
    )
    return 0


def _gui(args: argparse.Namespace) -> int:
    import napari

    viewer = napari.Viewer()
    if args.files:
        viewer.open([str(f) for f in args.files])
    if args.sample != "none":
        viewer.open_sample("napari-sansa", args.sample)
    viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    napari.run()
    return 0


def _make_test_weights(args: argparse.Namespace) -> int:
    from napari_sansa.engine.network.random_weights import write_random_checkpoints

    sam2, adapter = write_random_checkpoints(args.folder)
    print(f"{sam2}\n{adapter}\nRandom weights: they exercise the software but segment nothing meaningful.")
    return 0


def _printable_names() -> None:
    """Print any file name, whatever the console's code page: a Windows pipe or an old console
    encodes in the locale's (cp1252...), which has no letter for most of the world's names."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sansa`` command."""
    _printable_names()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="napari-sansa: %(message)s")
    handler = {
        "segment": segment_command,
        "adapt": adapt_command,
        "evaluate": evaluate_command,
        "serve": serve_command,
        "download": _download,
        "models": _models,
        "sample-data": _sample_data,
        "gui": _gui,
        "make-test-weights": _make_test_weights,
    }[args.command]
    try:
        return handler(args)
    except OutputExists as exc:  # the files layer names no flag: the command's own are added here
        print(f"napari-sansa: error: {exc} {REPLACE_FLAGS.get(args.command, '')}".rstrip(), file=sys.stderr)
        return EXIT_USAGE
    except SansaError as exc:
        print(f"napari-sansa: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("napari-sansa: interrupted; label images written so far are kept.", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"napari-sansa: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
