"""Published SANSA models: where their files live online and in the local cache.

Nothing is downloaded at import time or implicitly: only :func:`fetch_model` (called by
``Sansa.from_pretrained``, ``napari-sansa download`` and the widget's model loader) downloads,
each file to a temporary name first, checked, then moved into place. A file copied by hand to
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
from napari_sansa.engine.errors import SansaError

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


def http_transport(remote: RemoteFile, destination: Path, progress: bool) -> None:
    """Download over HTTP(S) with pooch's downloader (progress bar on stderr)."""
    import pooch

    pooch.HTTPDownloader(progressbar=progress, timeout=60)(remote.url, str(destination), None)


def gdrive_transport(remote: RemoteFile, destination: Path, progress: bool) -> None:
    """Download from Google Drive with gdown, which handles its confirmation pages."""
    import gdown

    result = gdown.download(id=remote.gdrive_id, output=str(destination), quiet=not progress)
    if result is None:
        raise OSError(f"Google Drive refused the download of {remote.page}")


def default_transport(remote: RemoteFile, destination: Path, progress: bool) -> None:
    """Google Drive files through gdown, everything else over plain HTTP."""
    (gdrive_transport if remote.gdrive_id else http_transport)(remote, destination, progress)


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


def _download(remote: RemoteFile, destination: Path, transport: Transport, progress: bool) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        log.info("Downloading %s to %s", remote.page, destination)
        transport(remote, partial, progress)
        verify_file(remote, partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def fetch_model(
    name: str = "universal",
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    download: bool = True,
    transport: Transport | None = None,
) -> tuple[Path, Path]:
    """Paths of a published model's SAM2 and adapter files, downloading the missing ones."""
    transport = transport or default_transport
    model = published_model(name)
    paths = expected_paths(name, cache_dir)
    problems = []
    for remote, path in zip((model.sam2, model.adapter), paths):
        if path.is_file() or not download:
            continue
        try:
            _download(remote, path, transport, progress)
        except SansaError as exc:
            problems.append(f"{exc}")
        except Exception as exc:  # network errors come in many types
            problems.append(f"{remote.filename}: {type(exc).__name__}: {exc}")
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
