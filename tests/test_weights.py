"""Published-model downloads, tested against a local HTTP server and a stubbed Google Drive."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

import napari_sansa as ns
from napari_sansa.engine.network import weights


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on loopback serving a folder; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def tiny_model_entry(monkeypatch, file_server, checkpoints):
    """A published model 'test' whose SAM2 file is served over HTTP and whose adapter is on 'Drive'."""
    root, base = file_server
    sam2_path, adapter_path = checkpoints
    shutil.copy(sam2_path, root / "sam2_hiera_tiny.pt")
    drive = {"abc123": adapter_path}
    sam2 = weights.RemoteFile("sam2_hiera_tiny.pt", f"{base}/sam2_hiera_tiny.pt", "sam2", sam2_size="tiny")
    adapter = weights.RemoteFile("adapter_test.pth", "unused", "adapter", gdrive_id="abc123")
    monkeypatch.setitem(
        weights.PUBLISHED, "test", weights.PublishedModel("test", "test model", sam2, adapter)
    )
    fetched = []

    def fake_gdrive(remote, destination, transfer):
        fetched.append(remote.gdrive_id)
        shutil.copy(drive[remote.gdrive_id], destination)

    monkeypatch.setattr(weights, "gdrive_transport", fake_gdrive)
    return root, fetched


def test_download_places_verified_files_in_the_cache(tiny_model_entry, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SANSA_CACHE_DIR", str(tmp_path / "cache"))
    sam2, adapter = weights.fetch_model("test", progress=False)
    assert sam2 == tmp_path / "cache" / "sam2_hiera_tiny.pt" and sam2.is_file()
    assert adapter == tmp_path / "cache" / "adapter_test.pth" and adapter.is_file()
    assert tiny_model_entry[1] == ["abc123"]
    assert not list((tmp_path / "cache").glob("*.part"))


def test_from_pretrained_uses_the_cached_files(tiny_model_entry, tmp_path, config):
    model = ns.Sansa.from_pretrained("test", cache_dir=tmp_path / "c", progress=False, config=config)
    assert model.info.sam2_size == "tiny" and model.info.name == "test"


def test_a_truncated_download_is_rejected_and_removed(tiny_model_entry, tmp_path):
    root, _ = tiny_model_entry
    data = (root / "sam2_hiera_tiny.pt").read_bytes()
    (root / "sam2_hiera_tiny.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ns.SansaError, match="truncated") as info:
        weights.fetch_model("test", cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "sam2_hiera_tiny.pt").exists()
    assert not list((tmp_path / "c").glob("*.part"))
    assert str(tmp_path / "c" / "sam2_hiera_tiny.pt") in str(info.value)


def test_a_wrong_file_behind_the_url_is_rejected(tiny_model_entry, tmp_path, checkpoints):
    root, _ = tiny_model_entry
    shutil.copy(checkpoints[1], root / "sam2_hiera_tiny.pt")  # the adapter, served as SAM2
    with pytest.raises(ns.SansaError, match="adapter weights only"):
        weights.fetch_model("test", cache_dir=tmp_path / "c", progress=False)


def test_a_published_hash_is_checked(tiny_model_entry, tmp_path, monkeypatch):
    entry = weights.PUBLISHED["test"]
    bad = weights.RemoteFile(**{**entry.sam2.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(weights.PUBLISHED, "test", weights.PublishedModel("test", "", bad, entry.adapter))
    with pytest.raises(ns.SansaError, match="SHA-256"):
        weights.fetch_model("test", cache_dir=tmp_path / "c", progress=False)


def test_hand_copied_files_are_used_without_any_download(tiny_model_entry, tmp_path, checkpoints):
    cache = tmp_path / "c"
    cache.mkdir()
    shutil.copy(checkpoints[0], cache / "sam2_hiera_tiny.pt")
    shutil.copy(checkpoints[1], cache / "adapter_test.pth")

    def no_network(*args):
        raise AssertionError("no download expected")

    paths = weights.fetch_model("test", cache_dir=cache, transport=no_network)
    assert paths == (cache / "sam2_hiera_tiny.pt", cache / "adapter_test.pth")


def test_download_false_lists_every_missing_file(tmp_path):
    with pytest.raises(ns.SansaError) as info:
        weights.fetch_model("universal", cache_dir=tmp_path, download=False)
    message = str(info.value)
    assert "sam2_hiera_large.pt" in message and "adapter_universal.pth" in message
    assert "https://drive.google.com/file/d/1nPOdRfMfo3MQRSi1qkPEri7Gl6FCEVHe/view" in message


def test_unknown_model_names_list_the_published_ones():
    with pytest.raises(ns.SansaError, match="universal"):
        weights.fetch_model("nope")


def _published(monkeypatch, base, adapter_name="adapter_test.pth"):
    """A published model 'slow' whose adapter is served by the slow server (SAM2 already cached)."""
    sam2 = weights.RemoteFile("sam2_hiera_tiny.pt", f"{base}/sam2.pt", "sam2", sam2_size="tiny")
    adapter = weights.RemoteFile(adapter_name, f"{base}/adapter.pth", "adapter")
    monkeypatch.setitem(weights.PUBLISHED, "slow", weights.PublishedModel("slow", "slow", sam2, adapter))


def _cache_with_sam2(tmp_path, checkpoints):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(checkpoints[0], cache / "sam2_hiera_tiny.pt")
    return cache


def test_a_download_reports_its_bytes_and_size(slow_server, monkeypatch, tmp_path, checkpoints):
    handler, base = slow_server
    handler.files["/adapter.pth"] = checkpoints[1].read_bytes()
    _published(monkeypatch, base)
    cache = _cache_with_sam2(tmp_path, checkpoints)
    heard = []
    weights.fetch_model("slow", cache_dir=cache, progress=lambda *news: heard.append(news))
    size = len(handler.files["/adapter.pth"])
    assert heard[0] == ("adapter_test.pth", 0, size) and heard[-1] == ("adapter_test.pth", size, size)
    assert [done for _, done, _ in heard] == sorted(done for _, done, _ in heard)
    assert (cache / "adapter_test.pth").read_bytes() == handler.files["/adapter.pth"]


def test_cancel_stops_a_download_at_once_and_keeps_nothing(slow_server, monkeypatch, tmp_path, checkpoints):
    handler, base = slow_server
    handler.files["/adapter.pth"] = bytes(64 * 2**20)  # 64 MiB, sent 4 KiB at a time
    _published(monkeypatch, base)
    cache = _cache_with_sam2(tmp_path, checkpoints)
    stop = threading.Event()

    def progress(name, done, total):
        if done > 0:
            stop.set()  # as the user presses Cancel

    with pytest.raises(ns.SansaError, match="cancelled"):
        weights.fetch_model("slow", cache_dir=cache, progress=progress, cancel=stop)
    assert sum(handler.sent) < 2**20  # stopped after the first chunks, not at the end
    assert sorted(p.name for p in cache.iterdir()) == ["sam2_hiera_tiny.pt"]  # no partial file


def test_a_dropped_connection_resumes_where_it_stopped(slow_server, monkeypatch, tmp_path, checkpoints):
    handler, base = slow_server
    data = checkpoints[1].read_bytes()
    handler.files["/adapter.pth"] = data
    handler.drop_after["/adapter.pth"] = len(data) // 2
    _published(monkeypatch, base)
    cache = _cache_with_sam2(tmp_path, checkpoints)
    weights.fetch_model("slow", cache_dir=cache, progress=False)
    assert (cache / "adapter_test.pth").read_bytes() == data  # checked as adapter weights, too
    first, again = handler.ranges
    resumed_at = int(again.removeprefix("bytes=").removesuffix("-"))
    assert first == "" and 0 < resumed_at <= len(data) // 2  # from what had arrived, not from 0
    assert sum(handler.sent) < len(data) + weights.CHUNK_BYTES  # the rest only, not all again
    assert not list(cache.glob("*.part"))


def test_google_drive_confirmation_pages_lead_to_the_file(slow_server, monkeypatch, tmp_path, checkpoints):
    handler, base = slow_server
    handler.files["/uc?id=abc"] = (
        f'<form id="download-form" action="{base}/file"><input type="hidden" name="id" value="abc"></form>'
    ).encode()
    handler.files["/file?id=abc"] = checkpoints[1].read_bytes()
    original = handler.end_headers

    def end_headers(self):  # Drive names the file it serves
        if self.path.startswith("/file"):
            self.send_header("Content-Disposition", 'attachment; filename="adapter.pth"')
        original(self)

    monkeypatch.setattr(handler, "end_headers", end_headers)
    sam2 = weights.RemoteFile("sam2_hiera_tiny.pt", f"{base}/sam2.pt", "sam2", sam2_size="tiny")
    adapter = weights.RemoteFile("adapter_d.pth", f"{base}/uc?id=abc", "adapter", gdrive_id="abc")
    monkeypatch.setitem(weights.PUBLISHED, "drive", weights.PublishedModel("drive", "", sam2, adapter))
    cache = _cache_with_sam2(tmp_path, checkpoints)
    weights.fetch_model("drive", cache_dir=cache, progress=False)
    assert (cache / "adapter_d.pth").read_bytes() == checkpoints[1].read_bytes()


def test_the_command_line_shows_a_bar_with_size_and_speed(
    slow_server, monkeypatch, tmp_path, checkpoints, capsys
):
    from napari_sansa.cli.main import main

    handler, base = slow_server
    handler.files["/adapter.pth"] = checkpoints[1].read_bytes()
    _published(monkeypatch, base)
    cache = _cache_with_sam2(tmp_path, checkpoints)
    assert main(["download", "slow", "--cache-dir", str(cache)]) == 0
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
    assert bar.startswith("adapter_test.pth: 100%") and "B/s" in bar, bar
