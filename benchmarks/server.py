"""SANSA server benchmark, over loopback: what computing through ``napari-sansa serve`` costs.

    .venv/bin/python benchmarks/server.py                      # input 512, 4 targets, CPU
    .venv/bin/python benchmarks/server.py --image-size 1024 --targets 8

It starts ``napari-sansa serve`` on 127.0.0.1 in its own process (mutual TLS, one worker, SAM2-tiny with random weights: speed does not depend on the weights' values), connects
a :class:`~napari_sansa.distributed.RemoteSansa` to it, and builds the same model in this
process. Measured, as medians and ratios:

- a target's time through the server against the same target computed here (a run of new
  targets: encoder pass included; goal at most 1.2x);
- bytes sent per target (the image) and received (labels; with the logits the widget's
  threshold slider needs);
- a preview-like update's round trip beyond the compute: the same cached target predicted
  again through the server, minus the compute time the server measured for it (goal at most
  50 ms); the same update here, for comparison.

Figures go to benchmarks/results/server.json and the "SANSA server" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from page import write_section

from napari_sansa.samples import cells

# The server's worker runs with Dask's pre-spawn environment: one OpenMP/BLAS thread for the
# libraries' own pools (torch's threads are set apart). The local side gets the same, so that the
# two sides differ only by the server; set in main(), before torch loads.
ONE_THREAD_POOLS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## SANSA server (loopback)"


@contextlib.contextmanager
def served(sam2: Path, adapter: Path, image_size: int, credentials: Path):
    """``napari-sansa serve`` in its own process, as on a GPU machine; its address."""
    model = ["--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu", "--precision", "fp32"]
    command = [sys.executable, "-c", "from napari_sansa.cli.main import main; raise SystemExit(main())",
               "serve", "--port", "0", "--credentials", str(credentials), "--image-size", str(image_size),
               *model]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = ""
        while "ready" not in line and process.poll() is None:
            line = process.stdout.readline()
        yield next(word for word in line.split() if word.startswith("tls://"))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def per_target(model, references, targets) -> float:
    start = time.perf_counter()
    for _ in model.propagate(references, targets):
        pass
    return (time.perf_counter() - start) / len(targets)


def updates(models: tuple, references, target, repeats: int) -> tuple[list[float], float]:
    """Median time of predicting ``target`` again with each model, the models taking turns (so
    that other work on the machine slows them alike); and the median of the last model's
    round trips minus its server's own compute time (the overhead beyond the compute)."""
    times: list[list[float]] = [[] for _ in models]
    beyond = []
    for _ in range(repeats):
        for model, kept in zip(models, times):
            start = time.perf_counter()
            found = next(iter(model.propagate(references, [target])))
            kept.append(time.perf_counter() - start)
        beyond.append(kept[-1] - found.seconds)
    return [statistics.median(kept) for kept in times], statistics.median(beyond)


def measure(image_size: int, n_targets: int, repeats: int, side: int) -> dict:
    import torch
    from instances import cpu_name

    import napari_sansa as ns
    from napari_sansa.distributed import connect
    from napari_sansa.distributed.worker import usable_cpus
    from napari_sansa.engine.network.random_weights import write_random_checkpoints

    torch.set_num_threads(usable_cpus())  # as many as the server's one worker takes
    (image, labels), *rest = cells(1 + 2 * n_targets, (side, side), seed=3)
    references = [ns.Reference(image, {1: ns.Mask(labels > 0)})]
    first, second = [t for t, _ in rest[:n_targets]], [t for t, _ in rest[n_targets:]]
    config = ns.SansaConfig(device="cpu", image_size=image_size, precision="fp32")
    with tempfile.TemporaryDirectory() as folder:
        sam2, adapter = write_random_checkpoints(Path(folder) / "weights", size="tiny")
        local = ns.Sansa.from_checkpoints(sam2, adapter, config=config)
        with served(sam2, adapter, image_size, Path(folder) / "credentials") as address:
            remote = connect(address, Path(folder) / "credentials" / "client")
            for model in (local, remote):
                model.estimate(references, 1)  # the references encoded once, on both sides
            # alternate which side goes first, so that other work on the machine hits both alike
            local_s = [per_target(local, references, first), per_target(local, references, second)]
            remote_s = [per_target(remote, references, second), per_target(remote, references, first)]
            remote.logits = True  # as the widget asks
            cached = first[0]
            (local_update, remote_update), overhead = updates((local, remote), references, cached, repeats)
            answer = next(iter(remote.propagate(references, [cached])))
            remote.close()
    logits = sum(np.asarray(v).nbytes for v in answer.logits.values())
    return {
        "image_size": image_size,
        "side": side,
        "targets": n_targets,
        "threads": torch.get_num_threads(),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "local_s_per_target": statistics.median(local_s),
        "server_s_per_target": statistics.median(remote_s),
        "ratio": statistics.median(remote_s) / statistics.median(local_s),
        "sent_bytes_per_target": int(np.asarray(cached).nbytes),
        "received_labels_bytes": int(answer.labels.nbytes),
        "received_logits_bytes": int(logits),
        "local_update_s": local_update,
        "server_update_s": remote_update,
        "update_overhead_ms": 1000 * overhead,
        "load_average": os.getloadavg()[0],
    }


def section(r: dict, command: str) -> str:
    kib = 1024
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured by `{command}` on {r['machine']} (no GPU; {r['threads']} torch threads each "
            f"side): `napari-sansa serve`'s server on 127.0.0.1 with mutual TLS, one CPU worker, "
            f"SAM2-tiny with random weights at input {r['image_size']}, against the same model in "
            f"the client's process; one reference (one class), {r['side']}x{r['side']} RGB targets "
            f"of cells, two runs of "
            f"{r['targets']} new targets each side (medians).",
            "",
            "| | this computer | through the server | ratio (goal <= 1.2) |",
            "| --- | --- | --- | --- |",
            f"| a target (encoder included) | {r['local_s_per_target']:.2f} s | "
            f"{r['server_s_per_target']:.2f} s | {r['ratio']:.2f}x |",
            f"| a preview-like update (cached target) | {1000 * r['local_update_s']:.0f} ms | "
            f"{1000 * r['server_update_s']:.0f} ms | {r['update_overhead_ms']:.0f} ms beyond the "
            "server's compute (goal <= 50 ms) |",
            "",
            f"Bytes per target: {r['sent_bytes_per_target'] / kib:.0f} KiB sent (the image, as "
            f"it is), {r['received_labels_bytes'] / kib:.0f} KiB back for the labels (command "
            f"line), {(r['received_labels_bytes'] + r['received_logits_bytes']) / kib:.0f} KiB with "
            "the float32 logits the widget's threshold slider needs; the references travel once "
            "per run, and the next targets are sent while one computes. On a network, add the "
            "bytes at its speed. The machine was shared (load average "
            f"{r['load_average']:.0f} on its 2 cores): every figure moves from run to run, and the "
            "update here (two processes' threads on two busy cores) is not the server's floor; "
            "the overhead column subtracts the compute time the server itself measured.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--side", type=int, default=512, help="targets' height and width")
    parser.add_argument("--targets", type=int, default=4)
    parser.add_argument("--updates", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    for name in ONE_THREAD_POOLS:
        os.environ.setdefault(name, "1")
    result = measure(args.image_size, args.targets, args.updates, args.side)
    print(json.dumps(result, indent=1))
    (ROOT / "benchmarks" / "results" / "server.json").write_text(json.dumps(result, indent=1))
    write_section(args.out, HEADING, section(result, "python benchmarks/server.py"))


if __name__ == "__main__":
    main()
