"""Adapting to a synthetic domain: held-out IoU before and after, steps/s and peak memory.

    .venv/bin/python benchmarks/adapt.py                            # the demo: CLI defaults, 300 steps
    .venv/bin/python benchmarks/adapt.py --train adapters+decoder   # the same, the mask decoder learning too
    .venv/bin/python benchmarks/adapt.py --steps 0 --speed-steps 20 --large-steps 2  # speed only

The domain (``napari_sansa.samples.bright_discs``): the class is the bright discs, among dark
discs and bright squares on a noisy background. A random-weight SAM2-tiny with random adapters
segments nothing of it; ``napari-sansa adapt`` runs on a reference set of 8 annotated images
(its own held-out share never trained on), and the adapted adapter is then scored on 8 more
images that adapt never saw, with the same 6 references, against the base adapter. Speed:
steps/s of training alone (no held-out scoring) and the process's peak resident memory, each
in a fresh process, for SAM2-tiny at input 256 and SAM2-Large at 1024.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def domain(n: int, seed: int):
    from napari_sansa import Mask, Reference
    from napari_sansa.samples import bright_discs

    return [Reference(image, {1: Mask(mask)}) for image, mask in bright_discs(n, (128, 128), seed=seed)]


def unseen_iou(sam2: Path, adapter: Path, references, targets, image_size: int) -> float:
    """Mean IoU of the bright discs on images adapt never saw."""
    import numpy as np

    from napari_sansa import Sansa, SansaConfig

    config = SansaConfig(device="cpu", image_size=image_size, precision="fp32", disk_cache_bytes=0)
    model = Sansa.from_checkpoints(sam2, adapter, config=config)
    predictions = model.segment(references, [t.image for t in targets])
    ious = []
    for target, prediction in zip(targets, predictions):
        truth, predicted = target.prompts[1].mask != 0, prediction.labels == 1
        ious.append(np.logical_and(truth, predicted).sum() / max(np.logical_or(truth, predicted).sum(), 1))
    return float(np.mean(ious))


def demo(steps: int, image_size: int, train: str) -> dict:
    from napari_sansa import save_references
    from napari_sansa.engine.network.random_weights import write_random_checkpoints

    work = Path(tempfile.mkdtemp(prefix="sansa-adapt-"))
    sam2, adapter = write_random_checkpoints(work / "weights", "tiny")
    references, unseen = domain(8, seed=1), domain(8, seed=101)
    save_references(work / "set", references)
    out = work / "adapted.pth"
    command = [
        sys.executable, "-m", "napari_sansa.cli.main", "adapt", "--references", str(work / "set"),
        "--out", str(out), "--steps", str(steps), "--sam2", str(sam2), "--adapter", str(adapter),
        "--device", "cpu", "--precision", "fp32", "--image-size", str(image_size),
    ] + (["--train", train] if train != "adapters" else [])  # fmt: skip
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    import torch

    record = torch.load(out, weights_only=True)["sansa_adaptation"]
    shots = references[:6]
    return {
        "command": "napari-sansa " + " ".join(command[3:]).replace(str(work), "$WORK"),
        "steps": steps,
        "image_size": image_size,
        "train": train,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "load_average": os.getloadavg()[0],
        "cli_last_line": done.stdout.strip().splitlines()[-1],
        "held_out_before": record["iou_before"],
        "held_out_after": record["iou_after"],
        "best_step": record["best_step"],
        "unseen_before": unseen_iou(sam2, adapter, shots, unseen, image_size),
        "unseen_after": unseen_iou(sam2, out, shots, unseen, image_size),
    }


def speed_child(size: str, image_size: int, steps: int) -> dict:
    """In a fresh process: training steps/s (no scoring) and peak resident memory."""
    import torch

    from napari_sansa import Sansa, SansaConfig
    from napari_sansa.engine.network.random_weights import write_random_checkpoints

    torch.set_num_threads(int(ENV["OMP_NUM_THREADS"]))
    with tempfile.TemporaryDirectory() as work:
        paths = write_random_checkpoints(work, size)
        config = SansaConfig(device="cpu", image_size=image_size, precision="fp32", disk_cache_bytes=0)
        model = Sansa.from_checkpoints(*paths, config=config)
    references = domain(6, seed=1)
    model.adapt(references, steps=1, validation=0)  # frozen blocks' outputs of the first views
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = time.process_time()
    report = model.adapt(references, steps=steps, validation=0)
    cpu = time.process_time() - cpu
    return {
        "cpu_s_per_step": cpu / steps,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "size": size,
        "image_size": image_size,
        "steps": steps,
        "steps_per_s": steps / report.seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_before_mib": before / 1024,
        "checkpointing": image_size >= 768,
    }


def speed(size: str, image_size: int, steps: int) -> dict:
    code = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import adapt; "
        f"print(json.dumps(adapt.speed_child({size!r}, {image_size}, {steps})))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mean(scores: dict) -> float:
    return sum(scores.values()) / len(scores)


def _minutes(seconds: float | None) -> str:
    return "not recorded" if seconds is None else f"{seconds / 60:.1f} min"


def report_lines(r: dict | None) -> list[str]:
    """The benchmarks page's section."""
    if not r:
        return []
    lines = [
        "## Adapting to your images",
        "",
        "`benchmarks/adapt.py`: a random-weight SAM2-tiny on a synthetic domain (the class: bright discs "
        "among dark discs and bright squares on a noisy background; 8 annotated images), adapted through "
        "the command line, e.g.:",
        "",
        f"    {next(iter(r['demo'].values()))['command'] if r.get('demo') else ''}",
        "",
        "IoU of the bright discs, base adapter -> adapted: on adapt's held-out images (never trained on), "
        "and on 8 more images adapt never saw (segmented with 6 of the references):",
        "",
        "| trained | steps | held-out images | unseen images | wall time (all in) | CPU time | best step |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in r["demo"].values():
        lines.append(
            f"| {d['train']} | {d['steps']} | {_mean(d['held_out_before']):.3f} -> {_mean(d['held_out_after']):.3f} "
            f"| {d['unseen_before']:.3f} -> {d['unseen_after']:.3f} | {d['seconds'] / 60:.1f} min "
            f"| {_minutes(d.get('cpu_seconds'))} | {d['best_step']} |"
        )
    if r.get("speed"):
        lines += [
            "",
            "Training alone (no held-out scoring), in a fresh process with one thread, over a few steps "
            "(most of which compute their views' frozen blocks for the first time, which a long run does "
            "once per view: an upper bound): steps/s as measured (wall clock, on a shared machine: see "
            "its load) and CPU seconds per step, which other processes change less:",
            "",
            "| SAM2 | input | steps | steps/s (wall) | CPU s per step | peak resident memory | load average |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in r["speed"]:
            lines.append(
                f"| {s['size']} | {s['image_size']} | {s['steps']} | {s['steps_per_s']:.3f} | {s['cpu_s_per_step']:.2f} "
                f"| {s['peak_rss_mib']:.0f} MiB"
                f"{' (gradient checkpointing)' if s['checkpointing'] else ''} | {s['load_average']:.1f} on {s['cpus']} CPUs |"
            )
    for note in r.get("notes", []):
        lines += ["", note]
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--train", choices=["adapters", "adapters+decoder"], default="adapters")
    parser.add_argument("--speed-steps", type=int, default=0, help="also measure training speed (0: no)")
    parser.add_argument("--large-steps", type=int, default=0, help="also SAM2-Large at 1024 (0: no)")
    parser.add_argument("--note", action="append", default=[], help="a line for the page (repeatable)")
    args = parser.parse_args()
    path = HERE / "results" / "adapt.json"
    path.parent.mkdir(exist_ok=True)
    result = json.loads(path.read_text()) if path.exists() else {"demo": {}, "speed": []}
    if args.steps:
        result["demo"][args.train] = demo(args.steps, args.image_size, args.train)
    if args.speed_steps:
        result["speed"] = [speed("tiny", 256, args.speed_steps)]
        if args.large_steps:
            result["speed"].append(speed("large", 1024, args.large_steps))
    result["notes"] = args.note or result.get("notes", [])
    path.write_text(json.dumps(result, indent=1))
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
