"""Where the image encoder spends its time on the CPU, in fp32 and in bf16 (torch profiler).

    .venv/bin/python benchmarks/bf16_profile.py [tiny|small|base_plus|large]

Explains why bf16 speeds up some SAM2 sizes more than others on a given CPU: it shows how much
of a pass is matrix products (which bf16 accelerates) and how much is attention kernels and
memory-bound copies and casts (which it does not).
"""

from __future__ import annotations

import sys

import torch

from napari_sansa.engine.config import autocast
from napari_sansa.engine.random_weights import random_sansa_module


def main(size: str = "tiny") -> None:
    sam = random_sansa_module(size).eval()
    x = torch.randn(1, 3, 1024, 1024)
    device = torch.device("cpu")
    for precision in ("fp32", "bf16"):
        with torch.inference_mode(), autocast(device, precision):
            sam.forward_image(x)  # warm-up
            with torch.profiler.profile() as profile:
                sam.forward_image(x)
        print(f"SAM2 {size}, {precision}")
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main(*sys.argv[1:])
