"""CUDA benchmarks: batched throughput of SAM2-Large, bf16 against fp32, and CUDA against CPU.

Run by ``benchmarks/run.py --device cuda`` on a machine with an NVIDIA GPU.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

import napari_sansa as ns
from napari_sansa.engine.network.random_weights import random_sansa_module

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: only to check the script


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def synced_seconds(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def uint8_images(n: int, seed: int, hw=(1024, 1024)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def reference(hw=(1024, 1024)) -> list[ns.Reference]:
    mask = np.zeros(hw, bool)
    mask[hw[0] // 4 : hw[0] // 2, hw[1] // 3 : 2 * hw[1] // 3] = True
    return [ns.Reference(uint8_images(1, 99, hw)[0], {1: ns.Mask(mask)})]


def make_model(sam, precision: str, batch_size: int | None = None, device: str = DEVICE) -> ns.Sansa:
    config = ns.SansaConfig(device=device, precision=precision, batch_size=batch_size, disk_cache_bytes=0)
    return ns.Sansa(sam, config)


def encoder_throughput(sam, precision: str, batches=(1, 8, 16, 32), repeats: int = 5) -> dict[int, float]:
    """Images per second through the image encoder alone, inputs already on the GPU."""
    model = make_model(sam, precision)
    out = {}
    for batch in batches:
        x = torch.randn(batch, 3, 1024, 1024, device=DEVICE, dtype=model.dtype)

        def run(x=x):
            with torch.inference_mode():
                model.sam.forward_image(x)

        run()
        out[batch] = batch / statistics.median(synced_seconds(run) for _ in range(repeats))
    return out


def propagate_throughput(sam, precision: str, batches=(1, 8, 16), n_targets: int = 96) -> dict[int, float]:
    """Images per second of ``propagate`` from uint8 numpy images to labels and logits on the host."""
    refs = reference()
    targets = uint8_images(n_targets, 5)
    out = {}
    for batch in batches:
        model = make_model(sam, precision, batch)
        model.segment(refs, targets[: 2 * batch])  # warm-up; these are then cached, so skip them
        rest = targets[2 * batch :]
        times = [synced_seconds(lambda m=model, rest=rest: m.segment(refs, rest))]
        model.clear_cache()
        model.segment(refs, targets[:1])
        times.append(synced_seconds(lambda m=model, rest=rest: m.segment(refs, rest)))
        out[batch] = len(rest) / min(times)
        del model
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    return out


def encoder_seconds(sizes, repeats: int = 10) -> dict[str, float]:
    """Seconds per image (batch 1, synced), fp32 and bf16, and mask IoU bf16 vs fp32."""
    out = {}
    refs = reference((480, 640))
    targets = uint8_images(4, 8, (480, 640))
    for size in sizes:
        sam = random_sansa_module(size)
        labels = {}
        for precision in ("fp32", "bf16"):
            model = make_model(sam, precision, 1)
            runtime = model.runtime
            x = [runtime.prepare(im, load=True) for im in uint8_images(repeats + 2, 1)]
            runtime.features_many(x[:2])  # warm-up
            out[f"{size}/{precision}"] = statistics.median(
                synced_seconds(lambda p=p, r=runtime: r.features_many([p])) for p in x[2:]
            )
            labels[precision] = [p.labels for p in model.segment(refs, targets)]
        ious = [_iou(a > 0, b > 0) for a, b in zip(labels["fp32"], labels["bf16"])]
        out[f"{size}/iou"] = float(np.median(ious))
        del sam
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    return out


def _iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def cuda_matches_cpu(size: str = "tiny") -> dict[str, float]:
    """The same job on CUDA (fp32, batches of 8) and on the CPU: median mask IoU and logit gap."""
    refs = reference((480, 640))
    targets = uint8_images(8, 3, (480, 640))
    sam = random_sansa_module(size)
    cpu = make_model(sam, "fp32", 1, device="cpu").segment(refs, targets)
    gpu = make_model(random_sansa_module(size), "fp32", 8).segment(refs, targets)
    return {
        "iou": float(np.median([_iou(a.labels > 0, b.labels > 0) for a, b in zip(cpu, gpu)])),
        "max logit gap": float(max(np.abs(a.logits[1] - b.logits[1]).max() for a, b in zip(cpu, gpu))),
    }


def run_all(quick: bool) -> dict:
    sizes = ["tiny"] if quick else ["tiny", "small", "base_plus", "large"]
    results: dict = {
        "device name": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (script check)"
    }
    results["check"] = cuda_matches_cpu()
    print(results, flush=True)
    results["encoder"] = encoder_seconds(sizes, 3 if quick else 10)
    print(results["encoder"], flush=True)
    size = "tiny" if quick else "large"
    sam = random_sansa_module(size)
    results["throughput size"] = size
    batches = (1, 2) if quick else (1, 8, 16, 32)
    results["encoder images/s"] = {
        p: encoder_throughput(sam, p, batches, 2 if quick else 5) for p in ("bf16", "fp32")
    }
    print(results["encoder images/s"], flush=True)
    results["propagate images/s"] = {
        p: propagate_throughput(sam, p, batches[:3], n_targets=8 if quick else 96) for p in ("bf16", "fp32")
    }
    print(results["propagate images/s"], flush=True)
    return results
