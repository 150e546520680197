"""Optional ``torch.compile`` of SAM2's image encoder, the bulk of every target's work.

Compiling costs time once per model and process (tens of seconds to minutes, the more the
larger the model; Inductor keeps compiled kernels in its own disk cache, so a later process
compiles faster), so it is off by default and pays only over many images. It is done when the
model is built, with one pass on a blank image, so that its cost is paid and measured there
(and not hidden in the first target) and so that a machine where it cannot work (no C++
compiler, an unsupported platform) falls back to the uncompiled encoder at once, with a warning.
"""

from __future__ import annotations

import logging
import time
import warnings

import torch

log = logging.getLogger(__name__)


def compile_encoder(
    sam: torch.nn.Module, image_size: int, dtype: torch.dtype, device: torch.device
) -> float | None:
    """Compile ``sam.image_encoder`` in place and run it once; the seconds that took, or
    ``None`` (with a warning) where compiling failed and the encoder stays as it was."""
    eager = sam.image_encoder
    start = time.perf_counter()
    try:
        compiled = torch.compile(eager)
        with torch.inference_mode():
            compiled(torch.zeros(1, 3, image_size, image_size, dtype=dtype, device=device))
    except Exception as exc:  # torch.compile reports a missing compiler etc. only when run
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        warnings.warn(
            f"torch.compile does not work here ({type(exc).__name__}: {reason}); the image encoder "
            "runs uncompiled. Leave compile off to skip this attempt.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    seconds = time.perf_counter() - start
    sam.image_encoder = compiled
    log.info("Image encoder compiled in %.1f s", seconds)
    return seconds
