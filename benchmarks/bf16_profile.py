"""Where the image encoder spends its time on the CPU, in fp32 and in bf16 (torch profiler).

    .venv/bin/python benchmarks/bf16_profile.py [tiny|small|base_plus|large] [image size]

Explains why bf16 speeds up some SAM2 sizes more than others on a given CPU: it shows how much
of a pass is matrix products (which bf16 accelerates where the CPU multiplies bf16 natively)
and how much is attention kernels and memory-bound copies and casts (which it does not). The
bf16 model is built as ``Sansa`` builds it: weights cast once (``engine.precision``).
"""

from __future__ import annotations

import sys

import torch

from napari_sansa.engine.network.precision import cast_model, model_dtype
from napari_sansa.engine.network.random_weights import random_sansa_module


def main(size: str = "tiny", image_size: str = "1024") -> None:
    side = int(image_size)
    for precision in ("fp32", "bf16"):
        sam = cast_model(random_sansa_module(size, side).eval(), precision)
        x = torch.randn(1, 3, side, side, dtype=model_dtype(precision))
        with torch.inference_mode():
            sam.forward_image(x)  # warm-up
            with torch.profiler.profile() as profile:
                sam.forward_image(x)
        print(f"SAM2 {size}, {precision}")
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main(*sys.argv[1:])
