"""Command line: ``napari-sansa segment``, ``download`` and ``models``.

User-facing problems print one line and exit with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_large import add_options as add_large_options
from .engine.config import DEVICES, PRECISIONS, SansaConfig
from .engine.errors import SansaError

SAM2_ENV = "NAPARI_SANSA_SAM2_CHECKPOINT"
ADAPTER_ENV = "NAPARI_SANSA_ADAPTER_CHECKPOINT"
EXIT_USAGE = 2


def _add_model_options(parser: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sansa", description="Few-shot segmentation with SANSA (SAM2 + adapters)."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser("segment", help="label target images like the annotated references")
    segment.add_argument(
        "--reference",
        "-r",
        action="append",
        metavar="IMAGE:MASK",
        help="a reference image and its label image; repeat for k shots",
    )
    segment.add_argument(
        "--references",
        action="append",
        type=Path,
        metavar="SET",
        help="a reference set folder (saved by the widget's Export… or napari_sansa.save_references)",
    )
    segment.add_argument(
        "--mask-classes",
        choices=["auto", "each", "one"],
        default="auto",
        help="each nonzero mask value is a class (each), or all are objects of one class (one: instance "
        "masks); auto: each for at most 5 values (default)",
    )
    segment.add_argument(
        "--class-name",
        action="append",
        metavar="ID=NAME",
        help="name a class (repeatable); the names go to classes.csv in --out",
    )
    segment.add_argument(
        "targets",
        nargs="+",
        type=Path,
        help="target image files, folders, quoted glob patterns ('plate/**/*.tif') or @list.txt "
        "(one path a line)",
    )
    segment.add_argument("--out", "-o", type=Path, required=True, help="folder for the label images")
    segment.add_argument(
        "--sequential", action="store_true", help="targets are a time series: remember each prediction"
    )
    segment.add_argument("--overwrite", action="store_true", help="replace label images that already exist")
    segment.add_argument(
        "--instances",
        choices=["watershed", "sam"],
        default=None,
        help="also write each object's own label (<name>_objects.tif) and a table of them "
        "(<name>_objects.csv): touching objects split by a watershed, or outlined by SAM2",
    )
    segment.add_argument(
        "--resume",
        action="store_true",
        help="skip targets whose label image exists and is complete; do only the rest",
    )
    add_large_options(segment)
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
    _add_model_options(segment)

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
    return parser


def _bytes(gigabytes: float | None, option: str) -> int | None:
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
        cache_bytes=_bytes(args.memory_gb, "--memory-gb"),
        disk_cache_bytes=_bytes(args.disk_cache_gb, "--disk-cache-gb"),
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
    """The model the options ask for: local files, else a published model."""
    from .engine.model import Sansa

    config, sam2, adapter = model_choice(args)
    if sam2 and adapter:
        return Sansa.from_checkpoints(sam2, adapter, config=config)
    return Sansa.from_pretrained(args.model or "universal", cache_dir=args.cache_dir, config=config)


def reference_inputs(args: argparse.Namespace):
    """The references the options give, the files they were read from (not targets), class names and notes."""
    from .cli_references import gather_references

    return gather_references(
        args.reference or [], args.references or [], args.mask_classes, args.class_name or []
    )


def target_paths(args: argparse.Namespace, skip: set[Path]) -> list[Path]:
    """Target image files from the files and folders given, minus the reference files."""
    from .files import expand_image_paths
    from .targets import expand_inputs

    targets = [p for p in expand_image_paths(expand_inputs(args.targets)) if p.resolve() not in skip]
    if not targets:
        raise SansaError("No target images: give image files or folders besides the references.")
    return targets


def labels_name(path: Path, labels) -> str:
    """``<stem>_labels.png`` where the labels fit in a PNG and the target was one, else ``.tif``."""
    from .files import labels_suffix

    preferred = ".png" if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp") else ".tif"
    return f"{path.stem}_labels{labels_suffix(labels, preferred)}"


def _segment(args: argparse.Namespace) -> int:
    if args.cluster or args.scheduler:
        from .distributed.local import segment_on_cluster

        return segment_on_cluster(args)
    from tqdm import tqdm

    from .class_table import write_class_table
    from .cli_large import LargeTargets
    from .files import ensure_writable_folder, read_image, write_labels
    from .object_files import write_objects

    references, reference_files, class_names, notes = reference_inputs(args)
    targets = target_paths(args, reference_files)
    out = ensure_writable_folder(args.out)
    large = LargeTargets.plan(targets, out, args, image_size=args.image_size)
    write_class_table(out, class_names, [c for ref in references for c in ref.prompts], args.overwrite)
    if args.resume:
        from .targets import resume_targets

        targets = resume_targets(targets, out, references, large.output_paths)
    model = load_model(args)

    failures: list[str] = []
    readable: list[Path] = []

    def images():
        for path in targets:
            try:
                image = large.read(path) if path in large.lazy else read_image(path)
            except SansaError as exc:
                failures.append(str(exc))
                continue
            readable.append(path)
            yield image

    for note in notes:
        print(f"napari-sansa: {note}", file=sys.stderr)
    estimate = model.estimate(references, large.estimate_targets(targets), **large.tiling())
    print(f"Estimate: {estimate}", file=sys.stderr)
    bar = tqdm(total=len(targets), unit="image", desc="SANSA", file=sys.stderr)
    counted: set[int] = set()  # an image with unreadable tiles is reported, then still predicted
    tiles: dict[Path, int] = {}
    try:

        def skip(index: int, error: SansaError) -> None:
            failures.append(f"{readable[index].name}: {error}")
            bar.update(0 if index in counted else 1)
            counted.add(index)

        run = model.propagate(references, images(), on_error=skip, **large.engine_options(readable))
        for prediction in run:
            path = readable[prediction.index]
            tiles[path] = prediction.tiles
            replace = args.overwrite or args.resume  # resumed: only unreadable outputs remain
            if large.handles(path):
                incomplete = large.finish(path, prediction)
                failures.extend([incomplete] if incomplete else [])
            else:
                write_labels(out / labels_name(path, prediction.labels), prediction.labels, overwrite=replace)
            if args.instances and not large.handles(path):
                write_objects(out, path.stem, *prediction.instances(args.instances), overwrite=replace)
            bar.update(0 if prediction.index in counted else 1)
            counted.add(prediction.index)
    finally:
        large.abandon()  # outputs still being written (an error stopped the run) are removed
        bar.close()
    for message in failures:
        print(f"napari-sansa: skipped: {message}", file=sys.stderr)
    print(f"Wrote {len(readable)} label image(s) to {out}{large.summary(tiles)}", file=sys.stderr)
    return EXIT_USAGE if failures else 0


def _download(args: argparse.Namespace) -> int:
    from .engine.weights import fetch_model

    sam2, adapter = fetch_model(args.name, cache_dir=args.cache_dir, progress=True)
    print(f"{args.name}: {sam2}\n{' ' * len(args.name)}  {adapter}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .engine.weights import PUBLISHED, expected_paths

    for name, model in PUBLISHED.items():
        sam2, adapter = expected_paths(name)
        state = "downloaded" if sam2.is_file() and adapter.is_file() else "not downloaded"
        print(f"{name:11s} {model.description} [{state}]")
        print(f"{'':11s}   {model.sam2.page}\n{'':11s}     -> {sam2}")
        print(f"{'':11s}   {model.adapter.page}\n{'':11s}     -> {adapter}")
    return 0


def _sample_data(args: argparse.Namespace) -> int:
    from .files import ensure_writable_folder, write_labels
    from .samples import cells

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
    from .engine.random_weights import write_random_checkpoints

    sam2, adapter = write_random_checkpoints(args.folder)
    print(f"{sam2}\n{adapter}\nRandom weights: they exercise the software but segment nothing meaningful.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sansa`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="napari-sansa: %(message)s")
    handler = {
        "segment": _segment,
        "download": _download,
        "models": _models,
        "sample-data": _sample_data,
        "gui": _gui,
        "make-test-weights": _make_test_weights,
    }[args.command]
    try:
        return handler(args)
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
