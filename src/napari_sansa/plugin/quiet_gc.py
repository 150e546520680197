"""Short garbage collections during a run, so that napari never freezes for one.

With torch and napari loaded, Python tracks about half a million objects, and each full
collection walks them all with the GIL held: about 0.3 s without a repaint, in whichever thread
triggers it. Freezing the objects that exist when a run starts leaves full collections only the
run's own objects; unfreezing at its end hands the rest back to the collector.
"""

from __future__ import annotations

import gc


class QuietCollections:
    """Freezes the collector's view of the objects alive at a run's start, until its end."""

    def __init__(self) -> None:
        self.frozen = False

    def freeze(self) -> None:
        """Exclude every object alive now from collections until :meth:`unfreeze`."""
        gc.freeze()
        self.frozen = True

    def unfreeze(self) -> None:
        """Collect normally again (a no-op unless :meth:`freeze` was called)."""
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
