"""napari's event loop while the widget works: the longest stall of a 10 ms QTimer probe.

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python benchmarks/stalls.py --label before
    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python benchmarks/stalls.py --quick   # input 256

napari with the SANSA dock at 1366x768, SAM2-tiny with random weights (speed does not depend on
the weights' values) at input 1024, six 768x1024 images of cells (three annotated with their true
nuclei as references, which Adapt needs; the other three are the targets). A QTimer on napari's
event loop ticks every 10 ms and records the gap between ticks; for each situation, the longest
gap (a freeze the user feels when it is long) and the median gap:

(a) a Run (loading the model included), (b) Suggest next with the features emptied from the cache
(as after Adapt), (c) Export with QuPath GeoJSON, (d) Adapt (a few steps), (e) a sweep of the
threshold slider (one step every 50 ms, then until the widget is idle).

Each ``--label`` (e.g. before / after a change) is kept in benchmarks/results/stalls.json and the
"napari's event loop" section of docs/benchmarks.md shows them side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from page import write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "stalls.json"
HEADING = "## napari's event loop while the widget works"
SITUATIONS = {
    "run": "Run (3 targets, loading the model)",
    "suggest": "Suggest next, features not cached",
    "export": "Export with QuPath GeoJSON",
    "adapt": "Adapt",
    "threshold": "Threshold slider sweep",
}
TICK_MS = 10


class Probe:
    """A QTimer ticking every 10 ms on napari's thread; the gaps between its ticks."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.timeout.connect(self._tick)
        self.timer.start(TICK_MS)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def measure(self, start: Callable[[], object], busy: Callable[[], bool], timeout_s: float = 600) -> dict:
        """Gaps from ``start()`` (called on napari's thread, as a button would) until not ``busy()``."""
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        pump(0.3)  # settle
        self.gaps.clear()
        self._last = time.perf_counter()
        began = time.perf_counter()
        start()
        deadline = began + timeout_s
        while busy() and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.002)
        seconds = time.perf_counter() - began
        pump(0.2)  # the last queued results land
        gaps = self.gaps or [seconds]
        return {
            "longest_s": max(gaps),
            "median_ms": 1000 * statistics.median(gaps),
            "seconds": seconds,
            "ticks": len(gaps),
        }


def pump(seconds: float) -> None:
    """Let napari's event loop run for a while."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def working(answer: list, busy: Callable[[], bool]) -> Callable[[], bool]:
    """Whether a widget call whose return value is ``answer[0]`` is still at work: a worker
    (until ``busy()`` says it is done), or the answer itself (done: the call did the work)."""
    return lambda: not isinstance(answer[0], (str, list, type(None))) and busy()


def open_widget(image_size: int, hw: tuple[int, int]):
    """napari at 1366x768 with six cell images, the SANSA dock, three annotated images."""
    import napari

    from napari_sansa.engine.network.random_weights import write_random_checkpoints
    from napari_sansa.samples import cells

    sam2, adapter = write_random_checkpoints(tempfile.mkdtemp(), size="tiny")
    os.environ.update(
        NAPARI_SANSA_SAM2_CHECKPOINT=str(sam2),
        NAPARI_SANSA_ADAPTER_CHECKPOINT=str(adapter),
        NAPARI_SANSA_CONFIG_DIR=tempfile.mkdtemp(),
        NAPARI_SANSA_SESSION_DIR=tempfile.mkdtemp(),  # never the user's saved sessions
        NAPARI_SANSA_CACHE_DIR=tempfile.mkdtemp(),
    )
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1366, 768)
    samples = cells(6, hw, seed=3)
    for i, (image, _) in enumerate(samples):
        viewer.add_image(image, name=f"cells {i}")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(image_size)
    widget.device.setCurrentText("cpu")
    for i in range(3):
        widget.prompt_image.setCurrentText(f"cells {i}")
        layer = widget.add_prompt_layer("labels")
        layer.data[samples[i][1] == 1] = 1
        layer.refresh()
    pump(1.0)
    return viewer, widget


def measure(image_size: int, hw: tuple[int, int], steps: int) -> dict[str, dict]:
    viewer, widget = open_widget(image_size, hw)
    probe = Probe()
    out = {}
    out["run"] = probe.measure(widget.run, lambda: widget.worker is not None)
    widget.model.clear_cache()  # as Adapt leaves it
    suggested: list = []
    answer = lambda: widget.suggestion is None  # noqa: E731
    out["suggest"] = probe.measure(
        lambda: suggested.append(widget.suggest_next()), working(suggested, answer)
    )
    folder = Path(tempfile.mkdtemp()) / "export"
    exported: list = []
    start = lambda: exported.append(widget.export(folder, formats=("geojson",)))  # noqa: E731
    out["export"] = probe.measure(start, working(exported, lambda: widget.run_files.job.running()))
    adapt = widget.adapt_panel
    out["adapt"] = probe.measure(lambda: adapt.start(steps), lambda: adapt.worker is not None)
    slider = widget.controls.threshold

    def sweep() -> None:
        for value in [*range(50, 96, 5), *range(90, 4, -5), *range(10, 51, 5)]:
            slider.setValue(value)
            pump(0.05)

    out["threshold"] = probe.measure(sweep, lambda: False)
    probe.timer.stop()
    viewer.close()
    return out


def cpu() -> str:
    """The CPU's model name (lscpu) and whether it has AVX512-BF16 (fast bf16 matrix products)."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = "unknown CPU"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return (
        f"{name}, {os.cpu_count()} cores, "
        + ("with" if "avx512_bf16" in flags else "without")
        + " avx512_bf16"
    )


def section(runs: dict[str, dict]) -> str:
    labels = list(runs)
    header = (
        "| situation | "
        + " | ".join(f"{label}: longest stall (s) / median gap (ms)" for label in labels)
        + " |"
    )
    rows = [
        f"| {text} | "
        + " | ".join(
            f"{runs[label]['stalls'][key]['longest_s']:.2f} / {runs[label]['stalls'][key]['median_ms']:.0f}"
            if key in runs[label]["stalls"]
            else "–"
            for label in labels
        )
        + " |"
        for key, text in SITUATIONS.items()
    ]
    machines = [
        f"- *{label}*: `{r['command']}` on {r['cpu']}, {r['threads']} torch thread(s); load average "
        f"{r['load_before']:.1f} before, {r['load_after']:.1f} after"
        + (
            " (the machine was shared: loaded)" if max(r["load_before"], r["load_after"]) > 2.5 else ""
        )  # the benchmark itself: about 2
        + f"; input {r['image_size']}, {r['images']}, Adapt {r['steps']} steps."
        for label, r in runs.items()
    ]
    return "\n".join(
        [
            HEADING,
            "",
            "A 10 ms QTimer on napari's event loop (napari at 1366x768 under Xvfb, the SANSA dock open) "
            "records the gaps between its ticks while the widget works: the longest gap is the longest "
            "freeze a user feels; the median gap shows how smoothly napari runs meanwhile (10 ms: "
            "undisturbed). SAM2-tiny with random weights on the CPU, six images of cells, three of them "
            "annotated (references), three targets. Goal: every stall at most 0.5 s. Each column is "
            "one run (its command and the machine's load below; the load average counts the "
            "benchmark itself, about 2 while it computes). *before*: the code of 612bfe4 (Suggest "
            "next, Export, stack linking and ground-truth IoU on napari's thread); *after*: that "
            "work in napari workers (before the model's owner and its queue were merged in); "
            "*loaded*: the same pair on a machine shared with other jobs; *all four issues merged*: "
            "every job through the model owner's queue, the threshold relabelled in a worker.",
            "",
            header,
            "| --- |" + " --- |" * len(labels),
            *rows,
            "",
            *machines,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="now", help="the column's name (e.g. before, after)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="input 256, 384x512 images, 2 Adapt steps; prints, writes nothing",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    import torch

    image_size, hw, steps = (256, (384, 512), 2) if args.quick else (1024, (768, 1024), 3)
    load_before = os.getloadavg()[0]
    stalls = measure(image_size, hw, steps)
    command = 'xvfb-run -a -s "-screen 0 1366x768x24" python benchmarks/stalls.py' + (
        " --quick" if args.quick else ""
    )
    result = {
        "stalls": stalls,
        "command": command + f" --label {args.label}",
        "cpu": cpu(),
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "image_size": image_size,
        "images": f"six {hw[0]}x{hw[1]}",
        "steps": steps,
    }
    print(json.dumps(result, indent=1))
    if args.quick:  # a check that it works: not for the page
        return
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs[args.label] = result
    RESULTS.write_text(json.dumps(runs, indent=1))
    write_section(args.out, HEADING, section(runs))


if __name__ == "__main__":
    main()
