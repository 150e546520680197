"""Published SANSA models: where their files live online and in the local cache.

Nothing is downloaded at import time or implicitly: only :func:`fetch_model` (called by
``Sansa.from_pretrained``, ``napari-sansa download`` and the widget's model loader) downloads,
each file to a temporary name first, checked, then moved into place. Files are streamed in
chunks: progress is reported and a cancel heard between them, and a dropped connection resumes
where it dropped when the server allows ranges (HTTP Range). A file copied by hand to
the path that :func:`expected_paths` names is used as it is, which is how firewalled machines
install weights.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from napari_sansa import environment
from napari_sansa.engine.callbacks import Cancel, DownloadProgress, is_cancelled
from napari_sansa.engine.errors import DownloadCancelled, SansaError

log = logging.getLogger(__name__)

CACHE_ENV = environment.CACHE_DIR


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its cache name, its public URL and what it must contain."""

    filename: str
    url: str
    kind: str  # "sam2" or "adapter"
    sam2_size: str = "large"
    gdrive_id: str = ""  # set for files on Google Drive
    sha256: str | None = None  # checked where the publisher gives one

    @property
    def page(self) -> str:
        """Where a person downloads the file with a browser."""
        return f"https://drive.google.com/file/d/{self.gdrive_id}/view" if self.gdrive_id else self.url


@dataclass(frozen=True)
class PublishedModel:
    """A SAM2 checkpoint plus a SANSA adapter, as released by their authors."""

    name: str
    description: str
    sam2: RemoteFile
    adapter: RemoteFile


SAM2_LARGE = RemoteFile(
    "sam2_hiera_large.pt",
    "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt",
    "sam2",
)


def _gdrive(filename: str, file_id: str) -> RemoteFile:
    return RemoteFile(
        filename, f"https://drive.google.com/uc?export=download&id={file_id}", "adapter", gdrive_id=file_id
    )


PUBLISHED: dict[str, PublishedModel] = {
    m.name: m
    for m in (
        PublishedModel(
            "universal",
            "SANSA universal model: objects and parts, from points, boxes, scribbles or masks",
            SAM2_LARGE,
            _gdrive("adapter_universal.pth", "1nPOdRfMfo3MQRSi1qkPEri7Gl6FCEVHe"),
        ),
        PublishedModel(
            "generalist",
            "In-context generalist (COCO, ADE20K, LVIS, PACO): mask references only",
            SAM2_LARGE,
            _gdrive("adapter_generalist.pth", "17PktKkF1wibJeEW5CIxPoL7bjKLevfXW"),
        ),
        PublishedModel(
            "fss1000",
            "Strict few-shot adapter trained on FSS-1000: mask references only",
            SAM2_LARGE,
            _gdrive("adapter_fss1000.pth", "1Y_W3cL-qxK-J5-yCJk1fXBwNwrhod5RS"),
        ),
    )
}

Transport = Callable[[RemoteFile, Path, bool], None]


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where weights are kept: the argument, else ``$NAPARI_SANSA_CACHE_DIR``, else the user cache."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-sansa", appauthor=False))


def published_model(name: str) -> PublishedModel:
    """A published model by name, or a SansaError listing the names."""
    try:
        return PUBLISHED[name]
    except KeyError:
        raise SansaError(f"Unknown model {name!r}; published models: {', '.join(PUBLISHED)}.") from None


def expected_paths(name: str, cache: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Where the SAM2 and adapter files of a published model are looked for."""
    model = published_model(name)
    root = cache_dir(cache)
    return root / model.sam2.filename, root / model.adapter.filename


CHUNK_BYTES = 64 * 2**10  # a cancel is heard between chunks
RETRIES = 3  # dropped connections resumed per file (from where they dropped, where ranges are allowed)
TIMEOUT_S = 60


@dataclass(frozen=True)
class Transfer:
    """One file's download as its caller follows it: bytes reported and a cancel checked
    between chunks."""

    name: str
    progress: DownloadProgress = None
    cancel: Cancel = None

    def check(self) -> None:
        """Raise :class:`DownloadCancelled` if the caller asked to stop."""
        if is_cancelled(self.cancel):
            raise DownloadCancelled(f"The download of {self.name} was cancelled; nothing of it was kept.")

    def report(self, done: int, total: int | None) -> None:
        """Hear a cancel, then tell the caller how far the file is."""
        self.check()
        if self.progress is not None:
            self.progress(self.name, done, total)


Transport = Callable[[RemoteFile, Path, Transfer], None]


def http_transport(remote: RemoteFile, destination: Path, transfer: Transfer) -> None:
    """Download over HTTP(S), resuming after a dropped connection where the server allows ranges."""
    import requests

    with requests.Session() as session:
        _stream(session, remote.url, destination, transfer)


def gdrive_transport(remote: RemoteFile, destination: Path, transfer: Transfer) -> None:
    """Download from Google Drive: past its confirmation page (read by gdown) to the file itself."""
    import requests

    with requests.Session() as session:
        _stream(session, _gdrive_file_url(session, remote.url), destination, transfer)


def _gdrive_file_url(session, url: str) -> str:
    """The URL that serves the file: Drive answers a large file's link with a page to confirm."""
    from gdown.download import get_url_from_gdrive_confirmation

    for _ in range(3):
        with session.get(url, stream=True, timeout=TIMEOUT_S) as response:
            response.raise_for_status()
            if "Content-Disposition" in response.headers:
                return url
            url = get_url_from_gdrive_confirmation(response.text)
    raise OSError("Google Drive kept asking to confirm the download")


def default_transport(remote: RemoteFile, destination: Path, transfer: Transfer) -> None:
    """Google Drive files past Drive's confirmation page, everything else over plain HTTP."""
    (gdrive_transport if remote.gdrive_id else http_transport)(remote, destination, transfer)


def _stream(session, url: str, destination: Path, transfer: Transfer) -> None:
    """Write ``url`` to ``destination`` chunk by chunk; after a dropped connection, ask for the
    rest (HTTP Range) and start again from zero only where the server ignores ranges."""
    import requests

    dropped = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    for attempt in range(RETRIES + 1):
        try:
            _stream_once(session, url, destination, transfer)
            return
        except dropped as exc:
            if attempt == RETRIES:
                raise
            log.info("%s: %s; resuming", transfer.name, exc)


def _stream_once(session, url: str, destination: Path, transfer: Transfer) -> None:
    have = destination.stat().st_size if destination.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, stream=True, timeout=TIMEOUT_S, headers=headers) as response:
        if have and response.status_code == 416:  # nothing left to send: the file is whole
            return
        response.raise_for_status()
        if response.status_code != 206:
            have = 0  # the whole file again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and "Content-Encoding" not in response.headers else None
        done = have
        transfer.report(done, total)
        with open(destination, "ab" if have else "wb") as out:
            for chunk in response.iter_content(CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                transfer.report(done, total)


class _Bars:
    """tqdm bars on stderr, one per file, with size, speed and time left (the command line's)."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, name: str, done: int, total: int | None) -> None:
        from tqdm.auto import tqdm

        if self.bar is None or self.bar.desc != name:
            self.close()
            self.bar = tqdm(desc=name, total=total, unit="B", unit_scale=True, unit_divisor=1024)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def verify_file(remote: RemoteFile, path: Path) -> None:
    """Check a downloaded file: its hash where published, else that it holds the right weights."""
    if remote.sha256:
        import pooch

        actual = pooch.file_hash(str(path), alg="sha256")
        if actual != remote.sha256:
            raise SansaError(
                f"{remote.filename}: SHA-256 {actual} does not match the published {remote.sha256}."
            )
    from napari_sansa.engine.network import checkpoints
    from napari_sansa.engine.network.architecture import infer_sam2_size

    source = f"downloaded {remote.filename}"
    state = checkpoints.read_state_dict(path, "downloaded")
    if remote.kind == "sam2":
        size = infer_sam2_size(checkpoints.sam2_weights(state, source), source)
        if size.name != remote.sam2_size:
            raise SansaError(f"{source} is SAM2 {size.name}, expected SAM2 {remote.sam2_size}.")
    else:
        checkpoints.adapter_weights(state, source)


def _download(remote: RemoteFile, destination: Path, transport: Transport, transfer: Transfer) -> None:
    """Fetch, check and move into place; a cancelled, dropped or rejected file leaves nothing."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        log.info("Downloading %s to %s", remote.page, destination)
        transfer.check()
        transport(remote, partial, transfer)
        verify_file(remote, partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def fetch_model(
    name: str = "universal",
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | DownloadProgress = True,
    cancel: Cancel = None,
    download: bool = True,
    transport: Transport | None = None,
) -> tuple[Path, Path]:
    """Paths of a published model's SAM2 and adapter files, downloading the missing ones.

    ``progress``: True shows tqdm bars on stderr, a function hears each file's bytes (file name,
    bytes so far, size) between chunks; ``cancel`` stops a download at once (between chunks) with
    :class:`DownloadCancelled`, leaving no partial file.
    """
    transport = transport or default_transport
    model = published_model(name)
    paths = expected_paths(name, cache_dir)
    bars = _Bars() if progress is True else None
    problems = []
    for remote, path in zip((model.sam2, model.adapter), paths):
        if path.is_file() or not download:
            continue
        transfer = Transfer(remote.filename, bars or progress or None, cancel)
        try:
            _download(remote, path, transport, transfer)
        except DownloadCancelled:
            raise
        except SansaError as exc:
            problems.append(f"{exc}")
        except Exception as exc:  # network errors come in many types
            problems.append(f"{remote.filename}: {type(exc).__name__}: {exc}")
        finally:
            if bars is not None:
                bars.close()
    missing = [
        f"  {r.page}\n    -> {p}" for r, p in zip((model.sam2, model.adapter), paths) if not p.is_file()
    ]
    if missing:
        reason = ("Downloading failed:\n  " + "\n  ".join(problems) + "\n") if problems else ""
        raise SansaError(
            f"The SANSA model {name!r} is not on this machine. {reason}"
            "Download these files (e.g. with a browser on a machine with internet) and copy each "
            "to exactly this path:\n"
            + "\n".join(missing)
            + f"\nor point ${CACHE_ENV} at the folder that holds them."
        )
    return paths
