"""Image features beyond the memory budget, kept on disk in fp16 instead of being recomputed.

Reading 8 MB back from disk takes milliseconds; encoding the image again takes seconds on a
CPU. Each model gets its own folder (features depend on the weights, the input size and the
precision), deleted when the model is garbage-collected or Python exits; folders left behind by
a process that crashed are removed by the next one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from napari_sansa.engine.network.features import ImageFeatures

log = logging.getLogger(__name__)

FP16_MAX = float(np.finfo(np.float16).max)
_FOLDER = re.compile(r"^run-(\d+)-[A-Za-z0-9_]+$")
_NAMES = ("high_res_0", "high_res_1", "top")


def default_disk_bytes(folder: Path) -> int:
    """A quarter of the free space where the cache lives, at most 16 GiB (2,000 images at 1024)."""
    try:
        free = shutil.disk_usage(_existing_parent(folder)).free
    except OSError:
        return 0
    return int(min(free // 4, 16 * 2**30))


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _remove_orphans(root: Path) -> None:
    """Delete feature folders of processes that no longer run (a crash skips the cleanup)."""
    for folder in root.glob("run-*"):
        match = _FOLDER.match(folder.name)
        if match is None or not folder.is_dir():
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (PermissionError, OSError):
            pass  # another user's process, or no way to tell: leave it


class DiskFeatureCache:
    """Least-recently-used features as fp16 ``.npz`` files in a private folder, up to a byte budget."""

    def __init__(self, root: str | os.PathLike, max_bytes: int) -> None:
        self.root = Path(root)
        self.folder: Path | None = None  # made on the first write: most runs never spill
        self.max_bytes = int(max_bytes)
        self._files: OrderedDict[bytes, tuple[Path, int, torch.dtype]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    def _make_folder(self) -> Path:
        with self._lock:
            if self.folder is None:
                self.root.mkdir(parents=True, exist_ok=True)
                _remove_orphans(self.root)
                self.folder = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=self.root))
                self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, True)
            return self.folder

    def __contains__(self, key: bytes) -> bool:
        return key in self._files

    def __len__(self) -> int:
        return len(self._files)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def put(self, key: bytes, features: ImageFeatures) -> None:
        """Write features (fp16); a full or unwritable disk only costs a later re-encoding."""
        with self._lock:
            if key in self._files:  # read back earlier and evicted again: the file is still good
                self._files.move_to_end(key)
                return
        arrays = {
            name: t.detach().float().clamp(-FP16_MAX, FP16_MAX).to(torch.float16).cpu().numpy()
            for name, t in zip(_NAMES, features.tensors)
        }
        size = sum(a.nbytes for a in arrays.values())
        if size > self.max_bytes:
            return
        partial = None
        try:
            path = self._make_folder() / f"{key.hex()}.npz"
            partial = path.with_suffix(".partial")
            with open(partial, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(partial, path)
        except OSError as exc:
            log.warning("Could not keep features on disk (%s); they will be recomputed if needed.", exc)
            if partial is not None:
                partial.unlink(missing_ok=True)
            return
        with self._lock:
            if key in self._files:
                self._bytes -= self._files.pop(key)[1]
            self._files[key] = (path, size, features.top.dtype)
            self._bytes += size
            dropped = []
            while self._bytes > self.max_bytes and len(self._files) > 1:
                _, (old, old_size, _) = self._files.popitem(last=False)
                self._bytes -= old_size
                dropped.append(old)
        for old in dropped:
            old.unlink(missing_ok=True)

    def get(self, key: bytes, device: torch.device | None = None) -> ImageFeatures | None:
        """Features read back in their original dtype, or ``None`` if not kept (or unreadable)."""
        with self._lock:
            entry = self._files.get(key)
            if entry is None:
                return None
            self._files.move_to_end(key)
        path, _, dtype = entry
        try:
            with np.load(path) as data:
                tensors = [torch.from_numpy(data[name]).to(device=device, dtype=dtype) for name in _NAMES]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("Cached features %s could not be read (%s); encoding again.", path.name, exc)
            self._forget(key)
            return None
        return ImageFeatures((tensors[0], tensors[1]), tensors[2])

    def _forget(self, key: bytes) -> None:
        with self._lock:
            entry = self._files.pop(key, None)
            if entry is not None:
                self._bytes -= entry[1]
        if entry is not None:
            entry[0].unlink(missing_ok=True)

    def clear(self) -> None:
        with self._lock:
            paths = [entry[0] for entry in self._files.values()]
            self._files.clear()
            self._bytes = 0
        for path in paths:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Delete the folder now rather than when the model is garbage-collected."""
        self.clear()
        if self._finalizer is not None:
            self._finalizer()
