"""The Sessions section: the session saved as it changes, Restore, and the saved sessions list.

The references, the results with the user's corrections, the accepted targets and the model
settings are saved a few seconds after they change (:data:`.saved_sessions.SAVE_AFTER_S`), by a
background thread: napari's only snapshots the layers. When the dock opens where the images of
a saved session are open (same names, same shapes), a line offers to *Restore* it.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from pathlib import Path

from napari.layers import Labels
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.sessions import read_session
from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.saved_sessions import (
    SAVE_AFTER_S,
    Restored,
    SessionSaver,
    fitting_session,
    new_session_folder,
    saved_sessions,
    sessions_root,
)
from napari_sansa.plugin.core.settings import settings_from
from napari_sansa.plugin.qt_lifetime import ThreadNews, is_deleted
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.large import is_lazy
from napari_sansa.plugin.viewer.reference_layers import annotation_layers
from napari_sansa.plugin.viewer.result_writer import painted_targets
from napari_sansa.plugin.viewer.session_layers import open_images, restore_layers, restored_keys, snapshot

SESSION_TIP = "Saved as you work (a crash loses a few seconds at most); restore or delete saved sessions"


class SessionsPanel(QWidget):
    """Saves the session as it changes; offers Restore; lists and deletes saved sessions."""

    summary_changed = Signal(str)

    def __init__(self, viewer, review, parts, settings, apply_settings) -> None:
        """``parts()``: the references as a run takes them (an :class:`~.core.runs.ExportParts`);
        ``settings()`` and ``apply_settings(s)``: the widget's :class:`~.core.settings.WidgetSettings`."""
        super().__init__()
        self.viewer, self.review = viewer, review
        self._parts, self._settings, self._apply_settings = parts, settings, apply_settings
        self.folder = new_session_folder()
        self.saver = SessionSaver()
        self._changed: set[str] | None = None  # result layers to save (image ids); None: all
        self._references_changed = True
        self._reference_images: set[str] = set()  # as of the last save
        self._timer = QTimer(self, singleShot=True, interval=int(SAVE_AFTER_S * 1000))
        self._timer.timeout.connect(self._save_now)
        self._saved, self._deleted = ThreadNews(), ThreadNews()  # from the saving thread: None, or
        self._saved.news.connect(self._after_save)  # what went wrong
        self._deleted.news.connect(self._after_delete)
        self._build()
        viewer.layers.events.inserted.connect(self._layer_added)
        viewer.layers.events.removed.connect(self._layer_removed)
        review.refreshed.connect(self._start_timer)  # scores and acceptances
        review.result_added.connect(lambda key: self.result_changed(key.image_id))
        for layer in viewer.layers:
            self._watch(layer)
        self.offer()

    def _build(self) -> None:
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        offer = QHBoxLayout()
        self.offer_label = QLabel()
        self.offer_label.setWordWrap(True)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip(
            "Bring back its references, results (with your corrections) and acceptances"
        )
        self.restore_button.clicked.connect(self._restore_clicked)
        offer.addWidget(self.offer_label, 1)
        offer.addWidget(self.restore_button)
        box.addLayout(offer)
        self.status = QLabel("Saved as you work, a few seconds after each change.")
        self.status.setWordWrap(True)
        box.addWidget(self.status)
        self.list = QListWidget()
        self.list.setToolTip(f"Saved sessions, newest first (in {sessions_root()})")
        self.list.setMaximumHeight(100)
        box.addWidget(self.list)
        row = QHBoxLayout()
        restore, delete = QPushButton("Restore selected"), QPushButton("Delete selected")
        restore.setToolTip("Bring back the selected session onto the open images of the same names")
        delete.setToolTip("Delete the selected saved session from the disk")
        restore.clicked.connect(lambda: self._restore_clicked(self._selected()))
        delete.clicked.connect(self._delete_clicked)
        row.addWidget(restore)
        row.addWidget(delete)
        box.addLayout(row)
        self.show_offer(None)
        self.refresh_list()

    # ------------------------------------------------------------------ what changed
    def _watch(self, layer) -> None:
        """Changes to an image's name, a reference's prompts or a result's labels are saved."""
        if L.RESULT_OF in layer.metadata:
            image_id = layer.metadata[L.RESULT_OF]
            callback = lambda event=None: self.result_changed(image_id)  # noqa: E731
            emitters = (layer.events.paint, layer.events.data)
        elif layer in annotation_layers(self.viewer) or layer in L.image_layers(self.viewer):
            callback = self.changed
            events = layer.events
            emitters = [
                getattr(events, name)
                for name in ("data", "paint", "features", "name")
                if hasattr(events, name)
            ]
        else:
            return
        for emitter in emitters:
            emitter.connect(callback)

    def _layer_added(self, event) -> None:
        if is_deleted(self):  # the dock was closed; napari goes on
            return
        self._watch(event.value)
        if not L.is_result(event.value):
            self.changed()
        if event.value in L.image_layers(self.viewer) and self._offered is None:
            self.offer()

    def _layer_removed(self, event) -> None:
        if not L.is_result(event.value):
            self.changed()
        elif L.RESULT_OF in event.value.metadata:  # its labels leave the session
            self._start_timer()

    def changed(self, event=None) -> None:
        """The references (or the images) changed: save them soon."""
        self._references_changed = True
        self._start_timer()

    def result_changed(self, image_id: str) -> None:
        """An image's labels changed (a run, the user's paint): save them soon."""
        if self._changed is not None:
            self._changed.add(image_id)
        self._start_timer()

    def all_results_changed(self, *_) -> None:
        """Every result's labels changed (relabelled at a new threshold): save them all soon."""
        self._changed = None
        self._start_timer()

    def _start_timer(self) -> None:
        """Save soon; later changes join this save, so at most SAVE_AFTER_S of work is lost."""
        if not is_deleted(self) and not self._timer.isActive():
            self._timer.start()

    @property
    def idle(self) -> bool:
        """Whether everything is saved (nothing waits to be saved or being written)."""
        return not self._timer.isActive() and not self.saver.busy

    # ------------------------------------------------------------------ saving
    def _save_now(self) -> None:
        """Snapshot the layers (napari's thread, copies only) and write them in the background."""
        if self.saver.busy:  # the last save is still being written: this one follows it
            self._timer.start()
            return
        parts = None
        layers = annotation_layers(self.viewer)
        lazy = any(isinstance(layer, Labels) and is_lazy(layer.data) for layer in layers)
        if self._references_changed and not lazy:  # a mask read from its file stays there
            try:
                parts = self._parts()
            except SansaError:
                parts = None  # references a run would refuse: the saved ones stay
        settings = asdict(self._settings())
        content = snapshot(self.viewer, parts, self._changed, self.review, settings, self._reference_images)
        if parts is not None:
            self._reference_images = {source["image"] for source in parts.sources}
        if not content.images and not (self.folder / "session.json").exists():
            return  # nothing worth a session yet
        self._changed, self._references_changed = set(), False
        self.saver.save(self.folder, content, self._saved.emit)

    def _after_save(self, problem: str | None) -> None:
        if problem is None:
            from datetime import datetime

            self.status.setText(f"Saved at {datetime.now():%H:%M:%S} in {self.folder}")
            self.summary_changed.emit(f"saved {datetime.now():%H:%M:%S}")
        else:
            self._changed, self._references_changed = None, True  # all of it, next time
            self.status.setText(f"Not saved: {problem}")
            self.summary_changed.emit("not saved")
        if self.isVisible():
            self.refresh_list()

    # ------------------------------------------------------------------ restore
    def offer(self) -> None:
        """Offer to restore the newest saved session whose images are all open."""
        found = fitting_session(open_images(self.viewer), besides=self.folder)
        self.show_offer(found)
        if found is not None:
            notifications.info(
                "A saved session of these images can be restored: SANSA dock › Session › Restore."
            )

    @property
    def offered(self) -> Path | None:
        """The saved session the Restore button brings back (its images are open), if any."""
        return self._offered

    def show_offer(self, summary) -> None:
        self._offered = summary.folder if summary is not None else None
        if summary is not None:
            self.offer_label.setText(f"A saved session of these images ({summary.describe()})")
            self.summary_changed.emit("Restore?")
        for widget in (self.offer_label, self.restore_button):
            widget.setVisible(summary is not None)

    def restore(self, folder: str | Path | None = None) -> Restored:
        """Bring back a saved session (the one offered by default) onto the open images."""
        folder = Path(folder) if folder is not None else self._offered
        if folder is None:
            raise SansaError("No saved session fits the open images (the same names and shapes).")
        saved = read_session(folder)
        missing = [n for n, shape in saved.images.items() if open_images(self.viewer).get(n) != shape]
        if missing:
            raise SansaError(f"Open these images first (same names and shapes): {', '.join(missing)}.")
        references, results, ids = restore_layers(self.viewer, saved)
        for name in results:  # painting on a restored result locks it, as on a run's
            lead = len(saved.images[name]) - 2
            lock = partial(self._lock_painted, ids[name], lead)
            L.result_layer(self.viewer, ids[name]).events.paint.connect(lock)
        self._apply_settings(settings_from(saved.settings))
        accepted = restored_keys(saved.accepted, ids)
        self.review.scores.update(zip(restored_keys(saved.scores, ids), saved.scores.values()))
        self.review.lock(accepted)
        self.folder, self._changed, self._references_changed = folder, None, True  # saved there from now on
        self.show_offer(None)
        names = saved.references.class_names if saved.references is not None else {}
        return Restored(folder, references, results, accepted, dict(names))

    def _lock_painted(self, image_id: str, lead: int, event) -> None:
        self.review.lock(painted_targets(image_id, lead, event))

    def _restore_clicked(self, folder=None) -> None:
        try:
            restored = self.restore(folder or None)
        except SansaError as exc:
            notifications.error(str(exc))
            return
        notifications.info(
            f"Restored {restored.references} reference(s), the results of {len(restored.results)} image(s) "
            f"and {len(restored.accepted)} accepted result(s)."
        )

    # ------------------------------------------------------------------ list
    def refresh_list(self) -> None:
        """List the saved sessions, newest first."""
        self.list.clear()
        for summary in saved_sessions():
            current = "  (this one)" if summary.folder == self.folder else ""
            item = QListWidgetItem(summary.describe() + current)
            item.setData(Qt.UserRole, str(summary.folder))
            item.setToolTip(summary.problem or str(summary.folder))
            self.list.addItem(item)

    def showEvent(self, event) -> None:
        self.refresh_list()
        super().showEvent(event)

    def _selected(self) -> Path | None:
        item = self.list.currentItem()
        return Path(item.data(Qt.UserRole)) if item is not None else None

    def _delete_clicked(self) -> None:
        folder = self._selected()
        if folder is not None:
            self.delete(folder)

    def delete(self, folder: str | Path) -> None:
        """Delete a saved session (in the background); this one is saved again at its next change."""
        folder = Path(folder)
        if folder == self.folder:
            self._changed, self._references_changed = None, True
        self.saver.delete(folder, self._deleted.emit)

    def _after_delete(self, problem: str | None) -> None:
        if problem is not None:
            notifications.error(problem)
        self.refresh_list()
        self.offer()
