"""The first use of a published model in the dock: its download shows and cancels at once."""

from __future__ import annotations

import re
import shutil

from napari_sansa.engine.network import weights
from test_widget import draw_labels_reference


def test_the_download_shows_its_progress_and_cancel_stops_it_at_once(
    open_widget, qtbot, slow_server, monkeypatch, tmp_path, checkpoints, errors
):
    handler, base = slow_server
    handler.files["/adapter.pth"] = bytes(256 * 2**20)  # slow: far from done when Cancel is pressed
    sam2 = weights.RemoteFile("sam2_hiera_tiny.pt", f"{base}/sam2.pt", "sam2", sam2_size="tiny")
    adapter = weights.RemoteFile("adapter_slow.pth", f"{base}/adapter.pth", "adapter")
    monkeypatch.setitem(weights.PUBLISHED, "slow", weights.PublishedModel("slow", "slow", sam2, adapter))
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(checkpoints[0], cache / "sam2_hiera_tiny.pt")
    monkeypatch.setenv("NAPARI_SANSA_CACHE_DIR", str(cache))
    viewer, widget = open_widget()
    widget.model_choice.setCurrentText("slow")
    draw_labels_reference(widget)
    download = widget.model_panel.download

    widget.run()
    qtbot.waitUntil(lambda: download.bar.value() > 0, timeout=60_000)
    first = download.bar.value()
    qtbot.waitUntil(lambda: download.bar.value() > first, timeout=60_000)  # the bar moves
    assert download.bar.maximum() == 256 * 2**10  # KiB
    assert re.fullmatch(
        r"Downloading adapter_slow.pth: .*B of 256MB, .*B/s, \d\d:\d\d left", download.text.text()
    )
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert sum(handler.sent) < 128 * 2**20  # stopped long before the end
    assert download.isHidden()
    assert sorted(p.name for p in cache.iterdir()) == ["sam2_hiera_tiny.pt"]  # no partial file
    assert "cancelled" in widget.status.text() and not errors
    assert widget.model is None
