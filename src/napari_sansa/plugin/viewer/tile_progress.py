"""Showing a large target while its tiles finish: the result layer redrawn, the bar in tiles.

The engine writes the result layer's zarr array from the worker thread, a row of tiles at a
time, and the widget hears of each tile through a queued Qt signal (:class:`TileDone` events);
it redraws a layer only when labels were written since its last redraw. Redrawing a layer
reads its whole plane on screen, so redraws are spaced: at least :data:`REFRESH_EVERY_S`
apart and a few times the last redraw's own duration, so a slow redraw of a huge plane never
keeps napari busy; the finished target is redrawn once more at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from napari_sansa.plugin.core.jobs import TileDone
from napari_sansa.plugin.panels.run_controls import RunControls
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.result_layers import RunLayers

REFRESH_EVERY_S = 0.5
REDRAW_SHARE = 4  # redraw at most once every REDRAW_SHARE x the time a redraw takes


class TileProgress:
    """Redraws the result layers of tiled targets and moves the bar tile by tile."""

    def __init__(self, viewer, controls: RunControls, describe: Callable[[object], str]) -> None:
        self.viewer, self.controls, self.describe = viewer, controls, describe
        self._last: dict[object, float] = {}  # layer -> when it was last redrawn
        self._cost: dict[object, float] = {}  # layer -> how long its last redraw took
        self.refreshes = 0  # redraws of result layers while their targets ran
        self.tiles = 0  # tiles of the images segmented so far in this run
        self.tiled = 0  # of those images, how many were tiled

    def start(self) -> None:
        """A new run."""
        self._last.clear()
        self._cost.clear()
        self.refreshes = self.tiles = self.tiled = 0

    def tiles_done(self, key, tiles: int) -> None:
        """A target is segmented, in ``tiles`` tiles (1: read whole)."""
        self.tiles += tiles
        self.tiled += tiles > 1

    def summary(self) -> str:
        """What the tiles add to the run's summary: nothing when no image was tiled."""
        return f" in {self.tiles} tiles" if self.tiled else ""

    def on_tile(self, event: TileDone, results: RunLayers | None, locked: set) -> None:
        """A tile is written: show the layer, redraw it if it is due, and move the bar."""
        self.controls.set_progress(event.done, event.total, "tiles")
        self.controls.status.setText(f"{self.describe(event.key)}: {event.done} / {event.total} tiles")
        if results is None or event.key in locked:
            return
        layer = L.result_layer(self.viewer, event.key.image_id)
        if layer is None:
            return
        if event.key not in results.unseen:
            return  # the engine writes a row of tiles at once: nothing new to show yet
        if results.fill(event.key.image_id):
            results.unseen.discard(event.key)
            layer.visible = True  # the first labels of a new layer: shows (and draws) it
            self._last[layer] = time.monotonic()
        elif self._due(layer) and L.shows_plane(self.viewer, layer, event.key.plane):
            results.unseen.discard(event.key)
            self.refresh(layer)

    def _due(self, layer) -> bool:
        wait = max(REFRESH_EVERY_S, REDRAW_SHARE * self._cost.get(layer, 0.0))
        return time.monotonic() - self._last.get(layer, 0.0) >= wait

    def refresh(self, layer) -> None:
        """Redraw a layer now, timing it."""
        start = time.monotonic()
        layer.refresh()
        self._last[layer] = time.monotonic()
        self._cost[layer] = self._last[layer] - start
        self.refreshes += 1
