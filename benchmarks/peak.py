"""Speed against the machine's limit: matmul peaks, the image encoder's GFLOP/s per SAM2 size
and precision, and what a target costs beyond its encoder pass.

    .venv/bin/python benchmarks/run.py --only peak --sizes tiny,small   # measure, rewrite the page

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``, plus the CPU flash attention
it does not count (``_scaled_dot_product_flash_attention_for_cpu``), computed from the shapes of
its inputs as PyTorch counts the other attention kernels. The peaks are the best of large
``torch.matmul`` products of square matrices, in the same run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module

CPU_ATTENTION = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peak(dtype: torch.dtype, budget_s: float = 1.0) -> dict[str, float]:
    """GFLOP/s of the best square product (sides 256 to 4096; larger ones only while one takes
    less than ``budget_s``: bf16 is emulated, and slow, on CPUs without AMX), by ``torch.matmul``
    and by ``F.linear`` (the layers' own path, which PyTorch may send to another kernel)."""
    ops = {"matmul": lambda a, b: a @ b, "linear": torch.nn.functional.linear}
    best = dict.fromkeys(ops, 0.0)
    for name, op in ops.items():
        for side in (256, 512, 1024, 2048, 4096):
            a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
            seconds = median_seconds(lambda a=a, b=b, op=op: op(a, b), 3)
            best[name] = max(best[name], 2 * side**3 / seconds / 1e9)
            if seconds > budget_s:
                break
    return best


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def count_flops(run) -> tuple[int, int]:
    """(all FLOPs, those of the CPU flash attention) of ``run()``, which runs once."""

    def attention(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    with FlopCounterMode(display=False, custom_mapping={CPU_ATTENTION: attention}) as counter:
        run()
    attention_flops = counter.get_flop_counts()["Global"].get(CPU_ATTENTION, 0)
    return counter.get_total_flops(), attention_flops


def build(size: str, precision: str, image_size: int) -> ns.Sansa:
    config = ns.SansaConfig(device="cpu", precision=precision, image_size=image_size, disk_cache_bytes=0)
    return ns.Sansa(random_sansa_module(size, image_size), config)


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def encoder_pass(model: ns.Sansa):
    x = torch.randn(1, 3, model.image_size, model.image_size, dtype=model.dtype)

    def run():
        with torch.inference_mode():
            model.sam.forward_image(x)

    return run


def images(n: int, seed: int, hw=(480, 640)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def per_target(model: ns.Sansa, encoder_flops: tuple[int, int], repeats: int) -> dict:
    """One target with its references cached (1 class, 1 shot) against one encoder pass."""
    mask = np.zeros((480, 640), bool)
    mask[150:330, 200:420] = True
    refs = [ns.Reference(images(1, 7)[0], {1: ns.Mask(mask)})]
    model.segment(refs, images(1, 8))  # references encoded, their memories cached, warmed up
    targets = images(repeats, 9)
    flops, attention = count_flops(lambda: model.segment(refs, targets[:1]))
    model.clear_cache()
    model.segment(refs, images(1, 8))
    passes = len(model.runtime.encoder_seconds)
    seconds = []
    for target in targets:
        start = time.perf_counter()
        model.segment(refs, [target])
        seconds.append(time.perf_counter() - start)
    encoder = statistics.median(model.runtime.encoder_seconds[passes:])
    target = statistics.median(seconds)
    beyond = flops - encoder_flops[0]
    return {
        "target s": target,
        "encoder s": encoder,
        "ratio": target / encoder,
        "beyond GFLOP": beyond / 1e9,
        "beyond attention GFLOP": (attention - encoder_flops[1]) / 1e9,
        "beyond GFLOP/s": beyond / 1e9 / max(target - encoder, 1e-9),
    }


def compile_row(size: str, precision: str, image_size: int, repeats: int) -> dict:
    """``compile=True`` against the same model uncompiled: compile seconds, encoder seconds, and
    the largest difference of the top-level features."""
    from dataclasses import replace

    eager = build(size, precision, image_size)
    sam = random_sansa_module(size, image_size)
    compiled = ns.Sansa(sam, replace(eager.config, compile=True))
    if compiled.compile_seconds is None:
        return {"failed": True}
    x = torch.randn(1, 3, image_size, image_size, dtype=eager.dtype)
    with torch.inference_mode():
        gap = compiled.sam.forward_image(x)["vision_features"] - eager.sam.forward_image(x)["vision_features"]
    return {
        "compile s": compiled.compile_seconds,
        "compiled s": median_seconds(encoder_pass(compiled), repeats),
        "eager s": median_seconds(encoder_pass(eager), repeats),
        "max feature gap": float(gap.abs().max()),
    }


def measure(
    sizes,
    precisions=("fp32", "bf16"),
    image_size: int = 1024,
    repeats: int = 3,
    compile_size: str | None = None,
) -> dict:
    """Peaks, then per size: FLOPs, encoder seconds and GFLOP/s per precision, the per-target ratio."""
    import platform

    from napari_sansa.engine.config import resolve_precision

    auto = resolve_precision(torch.device("cpu"), "auto")
    out = {
        "machine": f"{_cpu_name() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "image size": image_size,
        "auto": auto,
        "load average": list(__import__("os").getloadavg()),
        "products GFLOP/s": {p: matmul_peak(DTYPES[p]) for p in precisions},
        "sizes": {},
    }
    out["peak GFLOP/s"] = {p: max(v.values()) for p, v in out["products GFLOP/s"].items()}
    for size in sizes:
        row: dict = {}
        fp32 = build(size, "fp32", image_size)
        flops, attention = count_flops(encoder_pass(fp32))
        row["encoder GFLOP"], row["attention GFLOP"] = flops / 1e9, attention / 1e9
        for precision in precisions:
            model = fp32 if precision == "fp32" else build(size, precision, image_size)
            # a precision this machine only emulates is timed once (after its warm-up): it is slow
            seconds = median_seconds(encoder_pass(model), repeats if precision in (auto, "fp32") else 1)
            gflops = flops / 1e9 / seconds
            row[precision] = {
                "seconds": seconds,
                "GFLOP/s": gflops,
                "of peak": gflops / out["peak GFLOP/s"][precision],
            }
            print(f"{size} {precision}: {seconds:.2f} s, {gflops:.0f} GFLOP/s", flush=True)
        if auto in precisions:
            model = fp32 if auto == "fp32" else build(size, auto, image_size)
            row["target"] = per_target(model, (flops, attention), repeats)
            print(f"{size} target: {row['target']['ratio']:.2f}x one encoder pass", flush=True)
        out["sizes"][size] = row
    if compile_size:
        out["compile"] = {"size": compile_size, **compile_row(compile_size, auto, image_size, repeats)}
        print(f"compile: {out['compile']}", flush=True)
    return out


def chart(r: dict, path: Path) -> None:
    """Bar chart of seconds per image by SAM2 size and precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(r["sizes"])
    precisions = [p for p in DTYPES if any(p in r["sizes"][s] for s in sizes)]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    width = 0.8 / len(precisions)
    for k, precision in enumerate(precisions):
        values = [r["sizes"][s].get(precision, {}).get("seconds", np.nan) for s in sizes]
        label = precision + (" (= auto here)" if precision == r["auto"] else "")
        bars = ax.bar(np.arange(len(sizes)) + k * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(np.arange(len(sizes)) + width * (len(precisions) - 1) / 2, sizes)
    ax.set_ylabel("seconds per image (encoder)")
    ax.set_title(f"SAM2 image encoder at {r['image size']}x{r['image size']}, {r['machine']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _goal_lines(r: dict) -> list[str]:
    """Where the speed goals stand in this run: the encoder's share of its precision's matmul
    peak, and what a target costs beyond its encoder pass, per size."""
    auto, lines = r["auto"], []
    for size, row in r["sizes"].items():
        cell, t = row.get(auto), row.get("target")
        if not cell or not t:
            continue
        encoder_rate = cell["GFLOP/s"]
        lines.append(
            f"- SAM2 {size} at *auto* ({auto}): encoder {cell['of peak']:.0%} of the {auto} matmul peak; "
            f"a target {t['ratio']:.2f}x one encoder pass; the work beyond the encoder at "
            f"{t['beyond GFLOP/s']:.0f} GFLOP/s against the encoder's {encoder_rate:.0f} "
            f"({'at least as fast' if t['beyond GFLOP/s'] >= encoder_rate else 'slower'})."
        )
    if not lines:
        return []
    return [
        "Goals (SAM2-Large encoder >= 70 % of the peak; a SAM2-Large target <= 1.10x one encoder pass; "
        "the work beyond the encoder at >= the encoder's GFLOP/s), as measured in this run:",
        "",
        *lines,
        "",
    ]


def report_lines(r: dict | None, chart_path: str = "images/encoder-speed.png") -> list[str]:
    """The page's section on speed against the machine's limit."""
    if not r:
        return []
    peaks = r["peak GFLOP/s"]
    lines = [
        "## Speed against the machine's limit",
        "",
        "Measured by `.venv/bin/python benchmarks/run.py --only peak --sizes "
        f"{','.join(r['sizes'])}` on {r['machine']}, torch {r['torch']}, input "
        f"{r['image size']}x{r['image size']}; load average at the start "
        f"{r['load average'][0]:.1f} (the 2 cores were shared with other work, so times are noisy). "
        f"`auto` resolves to **{r['auto']}** on this CPU. Peaks of this run (best square product, "
        "`torch.matmul` / `F.linear`): "
        + ", ".join(
            f"{p} {v['matmul']:.1f} / {v['linear']:.1f} GFLOP/s" for p, v in r["products GFLOP/s"].items()
        )
        + ". FLOPs: `FlopCounterMode` plus the CPU flash attention it misses (in brackets).",
        "",
        "| SAM2 size | encoder GFLOP | precision | seconds per image | GFLOP/s | of that precision's matmul peak |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for size, row in r["sizes"].items():
        for precision in peaks:
            if precision not in row:
                continue
            cell = row[precision]
            name = precision + (" = auto" if precision == r["auto"] else "")
            lines.append(
                f"| {size} | {row['encoder GFLOP']:.0f} ({row['attention GFLOP']:.0f}) | {name} | "
                f"{cell['seconds']:.2f} | {cell['GFLOP/s']:.0f} | {cell['of peak']:.0%} |"
            )
    native = r["auto"] == "bf16"
    lines += [
        "",
        "bf16 weights are cast once when the model loads (no autocast), with layer norms, prompt position "
        "encodings and the mask decoder's output heads in fp32 (see the guide's *Speed*). "
        + (
            ""
            if native
            else "This CPU has neither AMX nor AVX512-BF16: its bf16 products are emulated, far below "
            "fp32 (the peaks above), so *auto* runs fp32 here and the bf16 rows only show what bf16 costs "
            "where it is not native."
        ),
        "",
        f"![Seconds per image by SAM2 size and precision]({chart_path})",
        "",
        f"### One target with its references cached ({r['auto']}, 1 class, 1 shot)",
        "",
        "| SAM2 size | target s | encoder pass s | target / encoder pass | beyond the encoder: GFLOP (attention) | its GFLOP/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for size, row in r["sizes"].items():
        t = row.get("target")
        if t:
            lines.append(
                f"| {size} | {t['target s']:.2f} | {t['encoder s']:.2f} | {t['ratio']:.2f}x | "
                f"{t['beyond GFLOP']:.0f} ({t['beyond attention GFLOP']:.0f}) | {t['beyond GFLOP/s']:.0f} |"
            )
    lines += ["", *_goal_lines(r)]
    c = r.get("compile")
    if c and c.get("failed"):
        lines += [
            f"`compile=True` failed on this machine (SAM2 {c['size']}): the encoder ran uncompiled.",
            "",
        ]
    elif c:
        pays = (c["eager s"] - c["compiled s"]) > 0
        lines += [
            f"### `compile=True` (SAM2 {c['size']}, {r['auto']})",
            "",
            f"Compiling the encoder took {c['compile s']:.0f} s at model build (Inductor, C++ on this CPU; "
            "Inductor keeps compiled kernels in a disk cache, so this is less where an earlier run "
            "compiled the same model). Encoder pass compiled "
            f"{c['compiled s']:.2f} s against {c['eager s']:.2f} s uncompiled (largest feature difference "
            f"{c['max feature gap']:.1g}): "
            + (
                f"it pays after about {c['compile s'] / (c['eager s'] - c['compiled s']):.0f} images."
                if pays
                else "it does not pay here."
            ),
            "",
        ]
    return lines
