"""Benchmarks of napari-sansa: figures saved in benchmarks/results/, page written to docs/benchmarks.md.

    xvfb-run -a .venv/bin/python benchmarks/run.py                 # CPU, full (about 45 min on 2 cores)
    xvfb-run -a .venv/bin/python benchmarks/run.py --quick         # smaller, to check the script
    .venv/bin/python benchmarks/run.py --device cuda               # NVIDIA GPU (no napari needed)
    xvfb-run -a .venv/bin/python benchmarks/run.py --only rss,stall  # measure some sections again
    .venv/bin/python benchmarks/run.py --only peak --sizes tiny,small  # matmul peaks, GFLOP/s, chart
    .venv/bin/python benchmarks/run.py --report-only               # rewrite the page from saved figures

Random-weight models: speed and memory do not depend on the weights' values. Every figure is a
median over repeated runs; comparisons are ratios of figures measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module

ROOT = Path(__file__).resolve().parents[1]


def images(n, seed, hw=(480, 640)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def mask(hw=(480, 640)):
    m = np.zeros(hw, bool)
    m[150:330, 200:420] = True
    return m


def model(size, precision="fp32", image_size=1024, cache_bytes=None):
    config = ns.SansaConfig(
        device="cuda" if torch.cuda.is_available() else "cpu",
        precision=precision,
        image_size=image_size,
        cache_bytes=cache_bytes,
    )
    return ns.Sansa(random_sansa_module(size, image_size), config)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def encoder_times(sizes, repeats):
    rows = {}
    for size in sizes:
        for precision in ("fp32", "bf16"):
            m = model(size, precision)
            imgs = images(repeats + 1, seed=1)
            m.encode(imgs[0])  # warm-up
            rows[(size, precision)] = statistics.median(
                timed(lambda im=im, m=m: m.encode(im))[0] for im in imgs[1:]
            )
        ref = [ns.Reference(images(1, 7)[0], {1: ns.Mask(mask())})]
        targets = images(2, 8)
        full = model(size, "fp32").segment(ref, targets)
        half = model(size, "bf16").segment(ref, targets)
        ious = []
        for a, b in zip(full, half):
            inter, union = np.logical_and(a.labels, b.labels).sum(), np.logical_or(a.labels, b.labels).sum()
            ious.append(1.0 if union == 0 else inter / union)
        rows[(size, "iou")] = float(np.median(ious))
    return rows


def per_target_ratios(size, repeats):
    m = model(size)
    refs_img = images(3, 11)
    rows = {}
    m.encode(refs_img[0])
    encode = statistics.median(timed(lambda im=im, m=m: m.encode(im))[0] for im in images(repeats, 12))
    configs = {
        "1 class x 1 shot": [ns.Reference(refs_img[0], {1: ns.Mask(mask())})],
        "1 class x 3 shots": [ns.Reference(im, {1: ns.Mask(mask())}) for im in refs_img],
        "3 classes x 1 shot": [
            ns.Reference(
                refs_img[0], {1: ns.Mask(mask()), 2: ns.Box(10, 10, 200, 200), 3: ns.Points([[400, 600]])}
            )
        ],
    }
    for name, refs in configs.items():
        m.segment(refs, images(1, 13))  # references encoded and their memories cached
        per = [timed(lambda t=t, refs=refs: m.segment(refs, [t]))[0] for t in images(repeats, 14 + len(name))]
        rows[name] = statistics.median(per) / encode
    rows["encoder s"] = encode
    return rows


def naive_vs_engine(size, n_targets, shots):
    refs = [ns.Reference(im, {1: ns.Mask(mask())}) for im in images(shots, 21)]
    targets = images(n_targets, 22)
    naive_model = model(size)
    naive_model.encode(targets[0])  # warm-up

    def naive():  # what the reference implementation's loop does: encode references again per target
        for t in targets:
            naive_model.clear_cache()
            naive_model.segment(refs, [t])

    naive_s, _ = timed(naive)
    engine_model = model(size)
    engine_model.encode(images(1, 23)[0])  # warm-up
    engine_s, _ = timed(lambda: engine_model.segment(refs, targets))
    return {
        "naive s": naive_s,
        "engine s": engine_s,
        "speed-up": naive_s / engine_s,
        "naive passes": n_targets * (shots + 1),
        "engine passes": engine_model.encoder_passes - 1,
    }


def current_rss() -> int:
    """Resident memory of this process now (Linux /proc; else the peak so far)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


CACHES = {  # name: (memory budget, disk budget); None = the default
    "unbounded": (2**62, 0),
    "256 MiB": (256 * 2**20, None),
    "default": (None, None),
}


def rss_child(n_images, image_size, cache):
    """Run in a subprocess: propagate to a stack, report the growth of resident memory."""
    import tempfile

    memory, disk = CACHES[cache]
    config = ns.SansaConfig(
        device="cpu",
        precision="fp32",  # as the published memory figures were measured
        image_size=image_size,
        cache_bytes=memory,
        disk_cache_bytes=disk,
        disk_cache_dir=tempfile.mkdtemp(),
    )
    m = ns.Sansa(random_sansa_module("tiny", image_size), config)
    ref = [ns.Reference(images(1, 31, (256, 256))[0], {1: ns.Mask(mask((256, 256)))})]
    rng = np.random.default_rng(32)
    stack = (rng.integers(0, 255, (256, 256, 3), dtype=np.uint8) for _ in range(n_images))
    m.segment(ref, images(1, 33, (256, 256)))
    base = peak = current_rss()
    for _ in m.propagate(ref, stack):
        peak = max(peak, current_rss())
    disk = m.features.disk.nbytes if m.features.disk is not None else 0
    print(
        json.dumps(
            {
                "images": n_images,
                "growth": peak - base,
                "feature_bytes": m.encode(images(1, 34, (256, 256))[0]).nbytes,
                "budget": m.features.max_bytes,
                "disk": disk,
            }
        )
    )
    m.close()


def rss_in_subprocess(n_images, image_size, cache):
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import run; "
        f"run.rss_child({n_images}, {image_size}, {cache!r})"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def rss(n_images, image_size):
    return {cache: rss_in_subprocess(n_images, image_size, cache) for cache in ("unbounded", "256 MiB")}


def rss_long(n_images, image_size):
    """A long stack with the default budgets: memory must stay bounded."""
    return rss_in_subprocess(n_images, image_size, "default")


def stall_probe(n_images, image_size):
    """Longest gaps of a 10 ms QTimer in napari's event loop while the widget runs."""
    import tempfile

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_sansa.engine.network.random_weights import write_random_checkpoints

    sam2, adapter = write_random_checkpoints(tempfile.mkdtemp())
    os.environ.update(
        NAPARI_SANSA_SAM2_CHECKPOINT=str(sam2),
        NAPARI_SANSA_ADAPTER_CHECKPOINT=str(adapter),
        NAPARI_SANSA_CONFIG_DIR=tempfile.mkdtemp(),
        NAPARI_SANSA_SESSION_DIR=tempfile.mkdtemp(),  # never the user's saved sessions
    )
    viewer = napari.Viewer()
    for i, image in enumerate(images(n_images, 41, (256, 320))):
        viewer.add_image(image, name=f"image {i}")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(image_size)
    widget.prompt_image.setCurrentText("image 0")
    layer = widget.add_prompt_layer("labels")
    layer.data[80:160, 100:200] = 1
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    widget.run()
    app = QApplication.instance()
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.002)
    timer.stop()
    viewer.close()
    stalls = np.array(gaps) - 10
    return {
        "median ms": float(np.median(stalls)),
        "p99 ms": float(np.percentile(stalls, 99)),
        "max ms": float(stalls.max()),
        "ticks": len(gaps),
    }


RESULTS = ROOT / "benchmarks" / "results"


CPU_SECTIONS = ("encoder", "ratios", "naive", "rss", "stall", "peak")
CHART = ROOT / "docs" / "images" / "encoder-speed.png"


def run_cpu(
    quick: bool,
    sections=CPU_SECTIONS,
    peak_sizes=("tiny", "small"),
    precisions=("fp32", "bf16"),
    compile_size=None,
) -> dict:
    sizes = ["tiny", "small"] if quick else ["tiny", "small", "base_plus", "large"]
    ratio_size = "tiny" if quick else "large"
    repeats = 2 if quick else 3
    out = {
        "quick": quick,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads",
        "torch": torch.__version__,
        "sizes": sizes,
        "ratio size": ratio_size,
    }
    if "encoder" in sections:
        out["encoder"] = {"/".join(key): value for key, value in encoder_times(sizes, repeats).items()}
    if "ratios" in sections:
        out["ratios"] = per_target_ratios(ratio_size, repeats)
    if "naive" in sections:
        out["naive"] = naive_vs_engine(ratio_size, 2 if quick else 3, 2 if quick else 3)
    if "rss" in sections:
        out["rss"] = rss(20 if quick else 200, 512)
        out["rss 1000"] = rss_long(50 if quick else 1000, 512)
    if "stall" in sections:
        out["stall"] = stall_probe(4 if quick else 8, 512)
    if "peak" in sections:
        import peak  # benchmarks/peak.py

        side = 512 if quick else 1024
        out["peak"] = peak.measure(peak_sizes, precisions, side, repeats, compile_size)
        peak.chart(out["peak"], CHART)
    return out


def run_cuda(quick: bool) -> dict:
    import gpu

    results = gpu.run_all(quick)
    size = "tiny" if quick else "large"
    results["quick"] = quick
    results["torch"] = torch.__version__
    results["ratio size"] = size
    results["ratios"] = per_target_ratios(size, 3 if quick else 10)
    results["naive"] = naive_vs_engine(size, 4 if quick else 16, 3)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller, to check the script")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--report-only", action="store_true", help="rewrite the page from saved results")
    parser.add_argument(
        "--only",
        default=",".join(CPU_SECTIONS),
        help=f"CPU sections to measure again, the others kept from the saved results: {', '.join(CPU_SECTIONS)}",
    )
    parser.add_argument(
        "--sizes", default="tiny,small", help="SAM2 sizes of the peak section (tiny, small, base_plus, large)"
    )
    parser.add_argument("--precisions", default="fp32,bf16", help="precisions of the peak section")
    parser.add_argument(
        "--compile-size", default=None, help="peak section: also time compile=True on this size"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if not args.report_only:
        if args.device == "cuda" and not torch.cuda.is_available():
            sys.exit("--device cuda: PyTorch sees no CUDA GPU")
        if args.device == "cuda":
            results = run_cuda(args.quick)
        else:
            sections = [name.strip() for name in args.only.split(",") if name.strip()]
            unknown = set(sections) - set(CPU_SECTIONS)
            if unknown:
                sys.exit(f"--only: unknown section(s) {', '.join(sorted(unknown))}")
            sizes, precisions = args.sizes.split(","), args.precisions.split(",")
            results = {
                **(load("cpu") or {}),
                **run_cpu(args.quick, sections, sizes, precisions, args.compile_size),
            }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.device}.json").write_text(json.dumps(results, indent=1))
    write_report(args.out)
    print(args.out.read_text())


def load(device: str) -> dict | None:
    path = RESULTS / f"{device}.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_report(path: Path) -> None:
    cpu, cuda = load("cpu"), load("cuda")
    lines = [
        "# Benchmarks",
        "",
        "Measured by `xvfb-run -a .venv/bin/python benchmarks/run.py` (CPU) and "
        "`python benchmarks/run.py --device cuda` (NVIDIA GPU), which save their figures in "
        "`benchmarks/results/` and rewrite this page. Random-weight models (speed and memory do not "
        "depend on the weights' values), input 1024x1024 unless said otherwise; every figure is a "
        "median over repeated runs, and each comparison is a ratio of figures measured in the same run. "
        "Sections can be measured again alone (`--only`), so different sections may come from different runs, "
        "and runs of different sessions from different machines: the *CPU* section's bf16 speed-ups show a "
        "CPU that multiplies bf16 natively, which the AMD EPYC of *Speed against the machine's limit* "
        "does not. Compare figures within a section.",
        "",
    ]
    if cpu:
        lines += cpu_section(cpu)
        from peak import report_lines as peak_lines  # benchmarks/peak.py

        lines += peak_lines(cpu.get("peak"), os.path.relpath(CHART, path.parent))
        from copies import report_lines as copies_lines  # benchmarks/copies.py

        lines += copies_lines(load("copies"))
        from allocator import report_lines as allocator_lines  # benchmarks/allocator.py

        lines += allocator_lines(load("allocator"))
    if cuda:
        lines += cuda_section(cuda)
    else:
        lines += [
            "## CUDA",
            "",
            "Not measured yet: no NVIDIA GPU was available. `python benchmarks/run.py --device cuda` measures "
            "CUDA against CPU agreement, encoder time per size in fp32 and bf16, and the throughput of "
            "SAM2-Large in batches (encoder alone and end-to-end propagation).",
            "",
        ]
    from cluster import report_lines  # benchmarks/cluster.py

    lines += report_lines(load("cluster"))
    from adapt import report_lines as adapt_lines  # benchmarks/adapt.py

    lines += adapt_lines(load("adapt"))
    from fewshot import report_lines as fewshot_lines  # benchmarks/fewshot.py

    lines += fewshot_lines()
    from page import with_other_sections  # benchmarks/page.py

    old = path.read_text() if path.exists() else ""  # other benchmarks' sections are kept
    path.write_text(with_other_sections("\n".join(lines), old))


def encoder_table(r: dict, sizes) -> list[str]:
    lines = [
        "| SAM2 size | fp32 | bf16 | bf16 speed-up | mask IoU bf16 vs fp32 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for size in sizes:
        f, b = r[f"{size}/fp32"], r[f"{size}/bf16"]
        lines.append(f"| {size} | {f:.3g} | {b:.3g} | {f / b:.2f}x | {r[f'{size}/iou']:.3f} |")
    return lines


def ratio_lines(r: dict, precision_note: str) -> list[str]:
    ratios, size, n = r["ratios"], r["ratio size"], r["naive"]
    lines = [
        f"### Cost of one target with references cached (SAM2 {size}, {precision_note})",
        "",
        f"One encoder pass: {ratios['encoder s']:.3g} s. A target costs its own encoder pass plus, per class, "
        "memory attention and the mask decoder.",
        "",
        "| job | per-target time / one encoder pass |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value:.2f}x |" for name, value in ratios.items() if name != "encoder s"]
    lines += [
        "",
        f"### Against re-encoding the references for every target (SAM2 {size})",
        "",
        "The reference implementation's evaluation loop encodes the k references again with every target "
        f"({n['naive passes']} encoder passes here); the engine encodes each image once ({n['engine passes']}).",
        "",
        f"Naive {n['naive s']:.3g} s, engine {n['engine s']:.3g} s: **{n['speed-up']:.2f}x faster**.",
        "",
    ]
    return lines


def cpu_section(r: dict) -> list[str]:
    quick = " (quick run)" if r.get("quick") else ""
    lines = [
        f"## CPU{quick}",
        "",
        f"Machine: {r['machine']}, torch {r['torch']}.",
        "",
        "### Image encoder, seconds per image",
        "",
    ]
    lines += encoder_table(r["encoder"], r["sizes"])
    lines += [""] + ratio_lines(r, "fp32")
    lines += [
        "### Memory while propagating to a stack (SAM2 tiny, input 512)",
        "",
        "| memory budget | images | feature bytes per image | peak RSS growth | on disk at the end |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows = list(r["rss"].items()) + [("default", r["rss 1000"])]
    for cache, row in rows:
        label = {"unbounded": "none", "256 MiB": "256 MiB"}.get(
            cache, f"default ({row['budget'] / 2**30:.1f} GiB)"
        )
        lines.append(
            f"| {label} | {row['images']} | {row['feature_bytes'] / 2**20:.1f} MiB | "
            f"{row['growth'] / 2**20:.0f} MiB | {row.get('disk', 0) / 2**20:.0f} MiB |"
        )
    s = r["stall"]
    lines += [
        "",
        "At input 1024 an image's features take 4x more (16 MiB in fp32). The default memory budget is an "
        "eighth of RAM, at most 1 GiB; features beyond it go to the disk cache in fp16 (a quarter of the "
        "free disk, at most 16 GiB) and are read back instead of encoding the image again.",
        "",
        "### napari event loop during a run (QTimer probe every 10 ms)",
        "",
        f"Delay beyond the timer's 10 ms over {s['ticks']} ticks: median {s['median ms']:.1f} ms, "
        f"99th percentile {s['p99 ms']:.1f} ms, longest {s['max ms']:.0f} ms.",
        "",
    ]
    return lines


def cuda_section(r: dict) -> list[str]:
    quick = " (quick run)" if r.get("quick") else ""
    size = r["throughput size"]
    lines = [
        f"## CUDA{quick}",
        "",
        f"Machine: {r['device name']}, torch {r['torch']}.",
        "",
        f"Same job on CUDA (fp32, batches of 8) and on the CPU (SAM2 tiny, 8 targets): median mask IoU "
        f"{r['check']['iou']:.4f}, largest logit difference {r['check']['max logit gap']:.2g}.",
        "",
        "### Image encoder, seconds per image (batch 1)",
        "",
    ]
    lines += encoder_table(r["encoder"], [k.split("/")[0] for k in r["encoder"] if k.endswith("/fp32")])
    lines += [
        "",
        f"### Throughput, SAM2 {size}, images per second",
        "",
        "Encoder alone: random inputs already on the GPU. Propagation: `Sansa.segment` from 1024x1024 uint8 "
        "RGB arrays in host memory to labels and logits in host memory (1 class, 1 shot), pre-processing in "
        "worker threads.",
        "",
        "| batch | encoder bf16 | encoder fp32 | propagation bf16 | propagation fp32 |",
        "| --- | --- | --- | --- | --- |",
    ]
    enc, prop = r["encoder images/s"], r["propagate images/s"]
    for batch in enc["bf16"]:
        cells = [
            enc["bf16"].get(batch),
            enc["fp32"].get(batch),
            prop["bf16"].get(batch),
            prop["fp32"].get(batch),
        ]
        lines.append(f"| {batch} | " + " | ".join("" if c is None else f"{c:.1f}" for c in cells) + " |")
    lines += [""] + ratio_lines(r, "fp32")
    return lines


if __name__ == "__main__":
    main()
