"""*Compute on: this computer / a server…*: the Model section's choice of where the model runs.

Connected to a SANSA server (``napari-sansa serve`` on a GPU machine), the widget's runs, live
preview, reference checks and suggestions go through a :class:`~napari_sansa.distributed.RemoteSansa`
instead of a model loaded here: images go to the server, labels and logits come back, and
this napari process never imports torch. The address and credentials folder are remembered
(``server.json`` beside the widget's settings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin import notifications
from napari_sansa.plugin.core.settings import settings_path

HERE, SERVER = "this computer", "a server…"
SETTINGS_FILE = "server.json"


def load_server_settings() -> tuple[str, str]:
    """The last server address and credentials folder ("" where none was saved)."""
    try:
        raw = json.loads((settings_path().parent / SETTINGS_FILE).read_text())
        return str(raw.get("address", "")), str(raw.get("credentials", ""))
    except (OSError, ValueError, AttributeError):
        return "", ""


def save_server_settings(address: str, credentials: str) -> None:
    path = settings_path().parent / SETTINGS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"address": address, "credentials": credentials}, indent=2))
    except OSError:
        pass  # remembering is a convenience


class ComputePanel(QWidget):
    """Where the model runs; holds the server connection while there is one."""

    connected = Signal(object)  # the RemoteSansa, or None once disconnected

    def __init__(self) -> None:
        super().__init__()
        self.remote = None
        self._connecting = None  # the worker connecting in the background
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.where = QComboBox()
        self.where.addItems([HERE, SERVER])
        self.where.setToolTip("Compute here, or on a GPU machine running napari-sansa serve")
        form.addRow("Compute on:", self.where)
        self.address = QLineEdit(placeholderText="tls://HOST:PORT (as napari-sansa serve prints it)")
        self.address.setToolTip("The server's address, as napari-sansa serve printed it")
        form.addRow("Server:", self.address)
        self.credentials = QLineEdit(placeholderText="a copy of the server's credentials/client folder")
        self.credentials.setToolTip(
            "A copy of the folder client/ in the server's --credentials folder (ca.pem, client.pem, "
            "client.key): keep it private"
        )
        browse = QPushButton("…", maximumWidth=30)
        browse.setToolTip("Choose the client credentials folder")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.credentials)
        row.addWidget(browse)
        form.addRow("Credentials:", row)
        self.connect_button = QPushButton("Connect")
        self.connect_button.setToolTip("Connect to the server (mutual TLS), or disconnect from it")
        self.connect_button.clicked.connect(self._toggle)
        self.state = QLabel("")
        self.state.setWordWrap(True)
        form.addRow(self.connect_button, self.state)
        self._server_rows = [self.address, self.credentials, browse, self.connect_button, self.state]
        address, credentials = load_server_settings()
        self.address.setText(address)
        self.credentials.setText(credentials)
        self.where.currentTextChanged.connect(self._where_changed)
        self._where_changed(HERE)

    def _where_changed(self, where: str) -> None:
        for widget in self._server_rows:
            widget.setVisible(where == SERVER)
        if where == HERE and self.remote is not None:
            self.disconnect_server()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "The server's client credentials folder")
        if folder:
            self.credentials.setText(folder)

    # ----------------------------------------------------------------- connecting
    def connect_server(self, address: str, credentials: str | os.PathLike):
        """Connect now (blocking, at most the connect timeout); the RemoteSansa, or a SansaError."""
        from napari_sansa.distributed import connect

        model = connect(address.strip(), Path(credentials).expanduser())
        model.logits = True  # the threshold slider re-labels from them
        self._adopt(model, address.strip(), str(credentials))
        return model

    def _adopt(self, model, address: str, credentials: str) -> None:
        self.disconnect_server()
        self.remote = model
        save_server_settings(address, credentials)
        self.where.setCurrentText(SERVER)
        self.address.setText(address)
        self.credentials.setText(credentials)
        self.connect_button.setText("Disconnect")
        self.state.setText(f"Connected: {model.info.name} on {model.device}")
        self.connected.emit(model)

    def disconnect_server(self) -> None:
        """Compute here again (the server keeps running)."""
        model, self.remote = self.remote, None
        if model is not None:
            model.close()
            self.connected.emit(None)
        self.connect_button.setText("Connect")
        self.state.setText("")

    def _toggle(self) -> None:
        if self.remote is not None:
            self.disconnect_server()
            return
        self._connect_in_background(self.address.text().strip(), self.credentials.text().strip())

    def _connect_in_background(self, address: str, credentials: str) -> None:
        """Connect off napari's thread (a refused handshake takes up to the connect timeout)."""
        from napari.qt.threading import create_worker

        from napari_sansa.distributed import connect

        if self._connecting is not None:
            return
        self.state.setText(f"Connecting to {address}…")
        self.connect_button.setEnabled(False)
        handlers = {  # given here: an error handled by us is not re-raised by napari
            "returned": lambda model: self._connected_in_background(model, address, credentials),
            "errored": self._refused,
            "finished": self._connect_ended,
        }
        folder = Path(credentials).expanduser()
        self._connecting = create_worker(connect, address, folder, _start_thread=False, _connect=handlers)
        self._connecting.start()

    def _connected_in_background(self, model, address: str, credentials: str) -> None:
        model.logits = True
        self._adopt(model, address, credentials)

    def _refused(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, SansaError) else f"{type(exc).__name__}: {exc}"
        self.state.setText("Not connected.")
        notifications.error(message)

    def _connect_ended(self) -> None:
        self._connecting = None
        self.connect_button.setEnabled(True)

    def run_failed(self, exc: Exception) -> None:
        """A run on the server ended early: say here too when the server went away (the
        notification said it once; the next run connects again by itself)."""
        from napari_sansa.distributed import ServerLost

        if isinstance(exc, ServerLost) and self.remote is not None:
            self.state.setText(f"Lost {self.remote.address}: the next run connects again.")
