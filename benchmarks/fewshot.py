"""The paper's protocol: few-shot mIoU and FB-IoU on FSS-1000 (and ISIC, chest X-ray, DeepGlobe).

    python benchmarks/fewshot.py --dataset fss1000 --root data/FSS-1000 --model fss1000 --shots 1
    python benchmarks/fewshot.py --dataset isic --root data/ISIC --episodes 600 --seed 0
    python benchmarks/fewshot.py --dataset fss1000 --root DIR --sam2 S.pt --adapter A.pth --device cuda

Each episode segments one query image from ``--shots`` support images of its class (their masks
are the references), as the reference's inference_fss.py does: the whole image through the model
(no tiles), the query's logits resized (bilinear) and its mask (nearest) to ``--score-size``
(518, the reference's evaluation size; 0: the query's own size), the class where logit > 0.
Folder layouts, test splits and episode rules: benchmarks/fewshot_datasets.py. Metrics:
napari_sansa.engine.metrics.fewshot. Writes ``--csv`` (one row per episode: class,
files, intersection, union, their background counts, the episode's iou) and beside it
``<csv stem>_classes.csv`` (one row per class: summed intersection and union, iou); the printed
mIoU is the mean of that file's iou column, recomputed from the episode rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fewshot_datasets import READERS, episodes, read_dataset, read_mask, read_rgb  # noqa: E402

from napari_sansa.engine.errors import SansaError  # noqa: E402
from napari_sansa.engine.metrics.fewshot import FewShotMeter, class_iou, fb_iou, mean_iou  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCORE_SIZE = 518  # the reference resizes query images and masks to 518 x 518 and scores there
DEFAULT_MODEL = {"fss1000": "fss1000"}  # the published adapter trained for it; others: universal


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=sorted(READERS), required=True)
    p.add_argument("--root", type=Path, required=True, help="the dataset's folder, or the folder holding it")
    p.add_argument("--shots", type=int, default=1)
    p.add_argument(
        "--episodes", type=int, default=None, help="default: the protocol's (FSS-1000: 2400; others 600)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score-size", type=int, default=SCORE_SIZE, help="side scored at (0: the query's size)")
    p.add_argument("--csv", type=Path, default=None, help="episode table (default benchmarks/results/...)")
    model = p.add_argument_group("model")
    model.add_argument(
        "--model", default=None, help="published model (default: fss1000 for FSS-1000, else universal)"
    )
    model.add_argument("--sam2", type=Path, default=None, help="local SAM2 checkpoint (with --adapter)")
    model.add_argument("--adapter", type=Path, default=None, help="local SANSA adapter checkpoint")
    model.add_argument("--image-size", type=int, default=1024, help="model input side (1024 as trained)")
    model.add_argument("--device", default="auto")
    model.add_argument("--precision", default="auto")
    return p


def load_model(args: argparse.Namespace):
    import napari_sansa as ns

    config = ns.SansaConfig(device=args.device, precision=args.precision, image_size=args.image_size)
    if args.sam2 or args.adapter:
        if not (args.sam2 and args.adapter):
            raise SansaError("Give both --sam2 and --adapter (or neither, for a published model).")
        return ns.Sansa.from_checkpoints(args.sam2, args.adapter, config=config)
    return ns.Sansa.from_pretrained(args.model or DEFAULT_MODEL.get(args.dataset, "universal"), config=config)


def _resized(array: np.ndarray, size: int, mode: str) -> np.ndarray:
    """``array`` resized to ``size`` x ``size`` as torch.nn.functional.interpolate does in the reference."""
    import torch
    import torch.nn.functional as F

    tensor = torch.as_tensor(np.ascontiguousarray(array, np.float32))[None, None]
    extra = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(tensor, size=(size, size), mode=mode, **extra)[0, 0].numpy()


def scored(prediction, truth: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The predicted and true masks at the scoring size: logits bilinear, mask nearest, as the reference."""
    logits = prediction.logits.get(1)
    if not size:
        return (logits > 0 if logits is not None else prediction.labels == 1), truth
    if logits is None:
        predicted = _resized(prediction.labels == 1, size, "nearest") > 0.5
    else:
        predicted = _resized(np.asarray(logits, np.float32), size, "bilinear") > 0
    return predicted, _resized(truth, size, "nearest") > 0.5


def run(args: argparse.Namespace, model=None, out=print) -> dict:
    """Run the episodes; write the tables; returns the figures (mIoU, FB-IoU in %)."""
    import napari_sansa as ns

    dataset = read_dataset(args.dataset, args.root)
    chosen = episodes(dataset, args.shots, args.episodes, args.seed)
    model = model or load_model(args)
    meter = FewShotMeter()
    start = time.perf_counter()
    for n, episode in enumerate(chosen, 1):
        references = [
            ns.Reference(read_rgb(s.image), {1: ns.Mask(read_mask(s.mask))}) for s in episode.supports
        ]
        prediction = model.segment(references, [read_rgb(episode.query.image)], tile_size=None)[0]
        predicted, truth = scored(prediction, read_mask(episode.query.mask), args.score_size)
        meter.add(
            episode.class_name,
            predicted,
            truth,
            query=str(episode.query.image.relative_to(dataset.root)),
            supports=";".join(str(s.image.relative_to(dataset.root)) for s in episode.supports),
        )
        if n % 50 == 0 or n == len(chosen):
            out(
                f"{n}/{len(chosen)} episodes, running mIoU {meter.miou:.1f} ({time.perf_counter() - start:.0f} s)"
            )
    table = meter.frame()
    path = args.csv or ROOT / "benchmarks" / "results" / f"fewshot_{args.dataset}_{args.shots}shot.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    classes = class_iou(table)
    classes.to_csv(path.with_name(f"{path.stem}_classes.csv"), index=False)
    figures = {
        "miou": mean_iou(table),
        "fb_iou": fb_iou(table),
        "episodes": len(table),
        "classes": len(classes),
    }
    unseen = len(dataset.classes) - len(classes)
    note = (
        f" ({unseen} of the split's classes had no episode; the reference would count them as 0)"
        if unseen
        else ""
    )
    out(
        f"{args.dataset} {args.shots}-shot, {figures['episodes']} episodes over {figures['classes']} classes, "
        f"seed {args.seed}: mIoU {figures['miou']:.2f}  FB-IoU {figures['fb_iou']:.2f}{note}\n"
        f"episodes: {path}"
    )
    return figures


def report_lines() -> list[str]:
    """The benchmarks page's section on this protocol (nothing measured yet: no weights here)."""
    return [
        "## The paper's protocol: few-shot mIoU",
        "",
        "`benchmarks/fewshot.py` evaluates as the SANSA paper does: episodes of one query image and "
        "`--shots` support images of the same class (their masks are the references), scored by mIoU "
        "(each class's IoU from its intersection and union summed over its episodes, then the mean over "
        "classes) and FB-IoU (the mean of the foreground and background IoU summed over all episodes), "
        "at the reference's 518x518 scoring size. It reads FSS-1000 in its published layout and test "
        "split (`FSS-1000/data/<class>/`, `FSS-1000/splits/test.txt`: 240 classes, 2,400 episodes), "
        "and the ISIC, chest X-ray (`LungSegmentation`) and DeepGlobe layouts the reference documents "
        "(600 episodes each); `--episodes N --seed S` draws a reproducible subset. Per-episode rows go to "
        "a CSV, per-class sums to `<csv>_classes.csv`, whose `iou` column's mean is the printed mIoU.",
        "",
        "```",
        "python benchmarks/fewshot.py --dataset fss1000 --root data/FSS-1000 --model fss1000 --shots 1 --device cuda",
        "python benchmarks/fewshot.py --dataset isic --root data/ISIC --model universal",
        "```",
        "",
        "What the published weights should give (the paper's 1-shot mIoU, strict few-shot adapters): "
        "FSS-1000 **91.4**, COCO-20i 60.2 (mean of 4 folds), LVIS-92i 49.6 (mean of 10 folds); the "
        "reference reports no figure for ISIC, chest X-ray or DeepGlobe. COCO-20i and LVIS-92i are not "
        "read by `fewshot.py` (their fold lists come as pickles with the reference's annotations).",
        "",
        "**Not measured here**: this machine has neither the published weights nor the datasets, so "
        "no figure above was reproduced with this implementation. Only the protocol itself is tested "
        "(`tests/test_fewshot.py`: synthetic folders in each layout, a tiny random-weight model, the "
        "metrics against hand-computed values, the printed figures recomputed from the CSV). The "
        "episodes are not the reference's own draws (another random generator; k-shot supports here are "
        "k distinct images), so expect figures within sampling noise of the paper's, not equal to them.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run(args)
    except SansaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
