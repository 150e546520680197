"""Annotate next: does annotating the suggested images raise the others' IoU faster than random ones?

    .venv/bin/python benchmarks/suggest.py                       # random-weight SAM2-tiny, input 256 (CPU: ~10 min on 2 shared cores)
    .venv/bin/python benchmarks/suggest.py --weights SAM2.pt ADAPTER.pth --image-size 1024   # real weights

A synthetic set with a known truth (whole cells of :func:`napari_sansa.samples.cells`, class 1):
a pool of ordinary images plus a few of an unusual appearance (colours inverted, or seen 2x
closer), and a held-out set made the same way with other seeds. Starting from one ordinary
reference, each round annotates one more pool image with its true mask, chosen by a strategy:
``suggest`` (:meth:`Sansa.rank_for_annotation`, from the round's scores: no extra propagation),
``uncertainty`` and ``novelty`` (each criterion alone), or ``random`` (median over seeds). After
each round, every image is segmented from the references and scored with
:func:`napari_sansa.score_classes`: the mean IoU of the pool images not annotated yet (what the
widget's user sees) and of the held-out set (which the choice cannot bias by taking the worst
images out of the mean). Figures go to benchmarks/results/suggest.json and the "Annotate next"
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from page import write_section
from scipy import ndimage

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module
from napari_sansa.engine.runs.annotation_ranking import rank_candidates
from napari_sansa.samples import cells

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Annotate next"
STRATEGIES = {"suggest": 0.5, "uncertainty": 0.0, "novelty": 1.0}  # novelty weight of each ranking


def inverted(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colours inverted: as if stained differently."""
    return 255 - image, truth


def closer(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centre seen 2x closer: larger cells, another magnification."""
    h, w = truth.shape
    rows, cols = slice(h // 4, h // 4 + h // 2), slice(w // 4, w // 4 + w // 2)
    big = ndimage.zoom(image[rows, cols], (2, 2, 1), order=1)
    return big, ndimage.zoom(truth[rows, cols], 2, order=0)


def dataset(normal: int, unusual: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(kind, RGB image, true mask of class 1) for ``normal`` ordinary images, then ``unusual``
    of each unusual kind."""
    out = [("ordinary", image, (labels > 0).astype(np.uint8)) for image, labels in cells(normal, seed=seed)]
    for k, change in enumerate((inverted, closer)):
        for image, labels in cells(unusual, seed=seed + 100 + k):
            out.append((change.__name__, *change(image, (labels > 0).astype(np.uint8))))
    return out


def mean_iou(
    model: ns.Sansa, references: list[ns.Reference], images: list, truths: list
) -> tuple[float, list]:
    """Mean IoU of class 1 over the images, and their confidence scores."""
    if not images:
        return float("nan"), []
    predictions = model.segment(references, images)
    ious = [float(ns.score_classes(p.labels, t, [1])["iou"].iloc[0]) for p, t in zip(predictions, truths)]
    return float(np.nanmean(ious)), [p.score for p in predictions]


def simulate(model, pool, held_out, rounds: int, strategy: str, seed: int = 0) -> dict:
    """Annotate ``rounds`` pool images one by one; the mean IoUs after each round (round 0: one reference)."""
    rng = np.random.default_rng(seed)
    annotated = [0]
    curve: dict[str, list] = {"remaining": [], "held_out": [], "chosen": []}
    for round_ in range(rounds + 1):
        references = [ns.Reference(pool[i][1], {1: ns.Mask(pool[i][2] == 1)}) for i in annotated]
        rest = [i for i in range(len(pool)) if i not in annotated]
        remaining, scores = mean_iou(
            model, references, [pool[i][1] for i in rest], [pool[i][2] for i in rest]
        )
        held, _ = mean_iou(model, references, [h[1] for h in held_out], [h[2] for h in held_out])
        if round_ == 0:
            curve["confidence_range"] = [min(scores), max(scores)]
        curve["remaining"].append(remaining)
        curve["held_out"].append(held)
        if round_ == rounds or not rest:
            break
        if strategy == "random":
            choice = rest[int(rng.integers(len(rest)))]
        else:
            ranked = rank_candidates(
                model,
                references,
                [pool[i][1] for i in rest],
                scores=scores,
                novelty_weight=STRATEGIES[strategy],
            )
            choice = rest[ranked[0].index]
        annotated.append(choice)
        curve["chosen"].append(pool[choice][0])
    return curve


def median_curve(curves: list[dict], key: str) -> list[float]:
    return [float(statistics.median(values)) for values in zip(*(c[key] for c in curves))]


def build_model(args) -> tuple[ns.Sansa, str]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = ns.SansaConfig(device=device, image_size=args.image_size, precision="fp32", disk_cache_bytes=0)
    if args.weights:
        return ns.Sansa.from_checkpoints(
            *args.weights, config=config
        ), f"weights {Path(args.weights[1]).name}"
    torch.manual_seed(0)
    return ns.Sansa(random_sansa_module("tiny", args.image_size), config), "random-weight SAM2-tiny"


def measure(args) -> dict:
    model, weights = build_model(args)
    pool = dataset(args.pool, args.unusual, seed=10)
    held_out = dataset(args.held_out, max(1, args.unusual // 2), seed=50)
    start = time.perf_counter()
    curves = {name: simulate(model, pool, held_out, args.rounds, name) for name in STRATEGIES}
    random_runs = [simulate(model, pool, held_out, args.rounds, "random", seed) for seed in range(args.seeds)]
    curves["random"] = {
        "remaining": median_curve(random_runs, "remaining"),
        "held_out": median_curve(random_runs, "held_out"),
        "chosen": [run["chosen"] for run in random_runs],
    }
    everything = [float(ns.score_classes(np.ones_like(t), t, [1])["iou"].iloc[0]) for _, _, t in held_out]
    return {
        "weights": weights,
        "all_cell_iou": float(np.mean(everything)),  # held-out IoU of calling every pixel a cell
        "device": str(model.device),
        "image_size": args.image_size,
        "pool": {kind: sum(p[0] == kind for p in pool) for kind in ("ordinary", "inverted", "closer")},
        "held_out": {
            kind: sum(h[0] == kind for h in held_out) for kind in ("ordinary", "inverted", "closer")
        },
        "rounds": args.rounds,
        "random_seeds": args.seeds,
        "seconds": time.perf_counter() - start,
        "curves": curves,
    }


def _row(name: str, values: list[float]) -> str:
    return f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |"


def section(r: dict, command: str) -> str:
    rounds = list(range(r["rounds"] + 1))
    header = "| strategy | " + " | ".join(f"{k + 1} ref{'s' if k else ''}" for k in rounds) + " |"
    rule = "| --- |" + " --- |" * len(rounds)
    lines = [
        HEADING,
        "",
        f"Measured by `{command}` ({r['weights']}, {r['device']}, input {r['image_size']}): a pool of "
        f"{r['pool']['ordinary']} ordinary synthetic cell images and {r['pool']['inverted']} + "
        f"{r['pool']['closer']} of an unusual appearance (colours inverted; 2x closer), a held-out set "
        f"of {r['held_out']['ordinary']} + {r['held_out']['inverted']} + {r['held_out']['closer']} made "
        "the same way. From one ordinary reference, each round annotates one more pool image (its true "
        "mask), chosen by *Suggest next* (`suggest`), by one of its criteria alone, or at random (median "
        f"of {r['random_seeds']} seeds); IoU of class 1 (`score_classes`) after each round.",
        "",
        "Mean IoU of the pool images not annotated yet:",
        "",
        header,
        rule,
        *[_row(name, c["remaining"]) for name, c in r["curves"].items()],
        "",
        "Mean IoU of the held-out images (not biased by which images leave the pool):",
        "",
        header,
        rule,
        *[_row(name, c["held_out"]) for name, c in r["curves"].items()],
        "",
        "Images chosen by `suggest`, in order: " + ", ".join(r["curves"]["suggest"]["chosen"]) + ".",
        "",
    ]
    low, high = r["curves"]["suggest"]["confidence_range"]
    lines += [
        f"The results' confidence (`Prediction.score`) ranged from {low:.2f} to {high:.2f} in the first round"
        + (
            ": equal for every image, so the uncertainty criterion cannot tell them apart and `suggest` "
            "ranks by novelty alone (its curves are `novelty`'s; `uncertainty` takes the pool in order)."
            if high - low < 1e-6
            else "."
        ),
        "",
    ]
    if r["weights"].startswith("random"):
        lines += [
            "With random weights the model has learned nothing about cells: its IoU stays below that of "
            f"calling every pixel a cell ({r['all_cell_iou']:.3f} on the held-out set), so the "
            "differences between these curves are the noise of an untrained network, evidence neither "
            "for nor against suggesting. What they do show: the ranking runs on each round's scores and "
            "cached features, and the novelty criterion picks images of an unusual appearance first "
            "(the list above; an image like one already annotated is no longer novel). "
            "Run it with real weights (`--weights`) to measure the benefit.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights", nargs=2, metavar=("SAM2", "ADAPTER"), help="checkpoint files (default: random)"
    )
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--pool", type=int, default=12, help="ordinary images in the pool")
    parser.add_argument("--unusual", type=int, default=2, help="pool images of each unusual kind")
    parser.add_argument("--held-out", type=int, default=6, help="ordinary held-out images")
    parser.add_argument("--rounds", type=int, default=6, help="images annotated after the first")
    parser.add_argument("--seeds", type=int, default=5, help="random strategy: seeds (the median is shown)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    results = measure(args)
    print(json.dumps(results, indent=1))
    (ROOT / "benchmarks" / "results" / "suggest.json").write_text(json.dumps(results, indent=1) + "\n")
    defaults = {a.dest: parser.get_default(a.dest) for a in parser._actions if a.dest not in ("help", "out")}
    changed = [
        f"--{name.replace('_', '-')} {value}"
        for name, value in vars(args).items()
        if name in defaults and value != defaults[name] and name != "weights"
    ]
    command = " ".join(
        ["python benchmarks/suggest.py", *(["--weights SAM2 ADAPTER"] if args.weights else []), *changed]
    )
    write_section(args.out, HEADING, section(results, command))


if __name__ == "__main__":
    main()
