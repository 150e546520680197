"""Saved sessions, without Qt: where they live, which one fits the open images, and saving
them one at a time in a background thread, never napari's (the file format:
:mod:`napari_sansa.files.sessions`)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from napari_sansa import environment
from napari_sansa.engine.errors import SansaError
from napari_sansa.files.sessions import (
    SESSION_FILE,
    SessionContent,
    delete_session,
    fits,
    read_manifest,
    write_session,
)
from napari_sansa.plugin.core.session import TargetKey

SAVE_AFTER_S = 3.0  # a change is saved this long after it (changes meanwhile join it): little is lost


def sessions_root() -> Path:
    """Where sessions are saved: ``NAPARI_SANSA_SESSION_DIR``, else the user data folder."""
    if os.environ.get(environment.SESSION_DIR):
        return Path(os.environ[environment.SESSION_DIR])
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-sansa", appauthor=False)) / "sessions"


def new_session_folder() -> Path:
    """A folder for a new session (made by its first save), named for when it began."""
    return sessions_root() / f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class SessionSummary:
    """A saved session as listed: when, which images; or why it cannot be read."""

    folder: Path
    saved: str = ""
    images: dict[str, tuple[int, ...]] = field(default_factory=dict)
    problem: str = ""

    def describe(self) -> str:
        if self.problem:
            return f"{self.folder.name}: damaged"
        when = self.saved.replace("T", " ")[:16]
        names = ", ".join(list(self.images)[:3]) + (", …" if len(self.images) > 3 else "")
        return f"{when} UTC — {len(self.images)} image(s): {names}"


def saved_sessions() -> list[SessionSummary]:
    """Every saved session, newest first (damaged ones last, with what is wrong)."""
    root = sessions_root()
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not (folder / SESSION_FILE).exists():
            continue
        try:
            manifest = read_manifest(folder)
        except SansaError as exc:
            found.append(SessionSummary(folder, problem=str(exc)))
            continue
        found.append(SessionSummary(folder, manifest["saved"], manifest["images"]))
    return sorted(found, key=lambda s: (not s.problem, s.saved), reverse=True)


def fitting_session(
    open_images: Mapping[str, tuple[int, ...]], besides: Path | None = None
) -> SessionSummary | None:
    """The newest saved session whose images are all open (same names, same shapes), other than ``besides``."""
    return next(
        (
            s
            for s in saved_sessions()
            if not s.problem and s.folder != besides and fits(s.images, open_images)
        ),
        None,
    )


@dataclass(frozen=True)
class Restored:
    """What :meth:`SansaWidget.restore_session` brought back."""

    folder: Path
    references: int  # how many references (images or planes with prompts)
    results: list[str]  # the images whose results (with the user's corrections) came back
    accepted: list[TargetKey]  # the targets accepted (locked) again
    class_names: dict[int, str] = field(default_factory=dict)


class SessionSaver:
    """Saves (and deletes) sessions one at a time in a background thread."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-sansa-session")
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """Whether a save or delete is queued or going on."""
        with self._lock:
            return self._in_flight > 0

    def _submit(self, work: Callable[[], object], done: Callable[[str | None], None]) -> None:
        def run() -> None:
            try:
                work()
                problem = None
            except (SansaError, OSError) as exc:
                problem = str(exc)
            with self._lock:
                self._in_flight -= 1
            done(problem)

        with self._lock:
            self._in_flight += 1
        self._executor.submit(run)

    def save(self, folder: Path, content: SessionContent, done: Callable[[str | None], None]) -> None:
        """Write ``content`` into ``folder``; ``done(problem or None)`` is called in the worker thread."""
        self._submit(lambda: write_session(folder, content), done)

    def delete(self, folder: Path, done: Callable[[str | None], None]) -> None:
        """Delete a saved session, after any save queued before."""
        self._submit(lambda: delete_session(folder), done)
