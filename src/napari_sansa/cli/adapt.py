"""``napari-sansa adapt``: fine-tune the adapters on a reference set, write an adapter file."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from napari_sansa.cli.options import add_model_options, load_model, reference_inputs
from napari_sansa.files.overwrite import refuse_existing


def add_parser(commands) -> None:
    """The ``adapt`` command and its options (the model options as ``segment`` has them)."""
    adapt = commands.add_parser(
        "adapt", help="fine-tune the adapters on your annotated images; write an adapter file"
    )
    adapt.add_argument(
        "--references", action="append", type=Path, metavar="SET", help="a reference set folder (repeatable)"
    )
    adapt.add_argument(
        "--reference", "-r", action="append", metavar="IMAGE:MASK", help="an image and its label image"
    )
    adapt.add_argument(
        "--mask-classes",
        choices=["auto", "each", "one"],
        default="auto",
        help="how --reference masks' values become classes, as for segment (default auto)",
    )
    adapt.add_argument("--out", "-o", type=Path, required=True, help="the adapter file to write (.pth)")
    adapt.add_argument(
        "--steps", type=int, default=300, help="training steps, one episode each (default 300)"
    )
    adapt.add_argument(
        "--validation",
        type=float,
        default=0.25,
        help="share of the mask-annotated images held out, never trained on, to score (default 0.25)",
    )
    adapt.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    adapt.add_argument(
        "--train",
        choices=["adapters", "adapters+decoder"],
        default="adapters",
        help="what learns: the adapters (default; SAM2 frozen), or also SAM2's mask decoder "
        "(written into the adapter file too)",
    )
    adapt.add_argument("--seed", type=int, default=0, help="random seed of the episodes and the split")
    adapt.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_model_options(adapt)


def adapt(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    refuse_existing([args.out], overwrite=args.overwrite)
    args.class_name = []
    references = reference_inputs(args).references
    model = load_model(args)
    stop = threading.Event()
    bar = tqdm(total=args.steps, unit="step", desc="Adapting", file=sys.stderr)

    def interrupted(signum, frame) -> None:
        if stop.is_set():  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        stop.set()
        bar.write("napari-sansa: stopping; the best state so far will be written (Ctrl-C again to abort).")

    def progress(news) -> None:
        shown = {"loss": f"{news.loss:.3f}"}
        if news.best_iou is not None:
            shown["held-out IoU"] = f"{news.best_iou:.3f}"
        bar.set_postfix(shown, refresh=False)
        bar.update(news.step - bar.n)

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        report = model.adapt(
            references,
            steps=args.steps,
            validation=args.validation,
            learning_rate=args.learning_rate,
            train=args.train,
            seed=args.seed,
            progress=progress,
            cancel=stop,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    sets = ", ".join(str(p) for p in args.references or [])
    path = model.save_adapter(args.out, reference_set=sets)
    print(f"Adapter written to {path}: {report.summary()}", file=sys.stderr)
    print(
        f"Held-out IoU before {report.iou_before:.3f}, after {report.iou_after:.3f} "
        f"({len(report.held_out)} image(s) never trained on)"
    )
    return 0
