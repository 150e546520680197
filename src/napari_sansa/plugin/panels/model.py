"""The model section of the widget: which weights, on which device, at which precision."""

from __future__ import annotations

import os

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_sansa.engine.config import DEVICES, PRECISIONS
from napari_sansa.engine.network.weights import PUBLISHED
from napari_sansa.environment import ADAPTER_CHECKPOINT as ADAPTER_ENV
from napari_sansa.environment import SAM2_CHECKPOINT as SAM2_ENV
from napari_sansa.plugin.core.settings import WidgetSettings
from napari_sansa.plugin.panels.download import DownloadBar

LOCAL = "local files"


class _FileRow(QWidget):
    def __init__(self, placeholder: str) -> None:
        super().__init__()
        self.edit = QLineEdit(placeholderText=placeholder)
        self.edit.setToolTip(f"{placeholder}: a file on this machine (Model: local files)")
        browse = QPushButton("…")
        browse.setToolTip("Choose the file")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit)
        row.addWidget(browse)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a checkpoint", "", "PyTorch checkpoints (*.pt *.pth);;All files (*)"
        )
        if path:
            self.edit.setText(path)


class ModelPanel(QWidget):
    """Published model or local files; device, precision and input size."""

    summary_changed = Signal(str)  # what runs, for the section's title line

    def __init__(self) -> None:
        super().__init__()
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.model_choice = QComboBox()
        self.model_choice.addItems([*PUBLISHED, LOCAL])
        self.model_choice.setToolTip("\n".join(f"{n}: {m.description}" for n, m in PUBLISHED.items()))
        self.sam2_file, self.adapter_file = (
            _FileRow("SAM2 checkpoint (.pt)"),
            _FileRow("SANSA adapter (.pth)"),
        )
        self.device, self.precision = QComboBox(), QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto: a CUDA GPU, then Apple MPS, then the CPU")
        self.precision.addItems(PRECISIONS)
        self.image_size = QSpinBox(minimum=128, maximum=2048, singleStep=64, value=1024, suffix=" px")
        self.image_size.setToolTip(
            "Model input size: SAM2 was trained at 1024; smaller is faster on a CPU, less accurate"
        )
        form.addRow("Model", self.model_choice)
        form.addRow("SAM2 file", self.sam2_file)
        form.addRow("Adapter file", self.adapter_file)
        form.addRow("Device", self.device)
        self.precision.setToolTip(
            "auto: bf16 where the hardware runs it natively (recent GPUs, CPUs with AMX or AVX512-BF16), "
            "else fp32 (Apple GPUs included)"
        )
        form.addRow("Precision", self.precision)
        form.addRow("Input size", self.image_size)
        self.download = DownloadBar()  # while a published model downloads
        form.addRow(self.download)
        self.download.changed.connect(
            lambda text: self.summary_changed.emit(text) if text else self._describe()
        )
        self.model_choice.currentTextChanged.connect(self._choice_changed)
        for changed in (
            self.model_choice.currentTextChanged,
            self.device.currentTextChanged,
            self.precision.currentTextChanged,
            self.image_size.valueChanged,
        ):
            changed.connect(self._describe)

    def _describe(self, *_) -> None:
        """Say the chosen model and settings (until a loaded model says what runs)."""
        chosen = (self.model_choice.currentText(), self.device.currentText(), self.precision.currentText())
        self.summary_changed.emit(f"{', '.join(chosen)}, {self.image_size.value()} px")

    def _choice_changed(self, choice: str) -> None:
        self.sam2_file.setEnabled(choice == LOCAL)
        self.adapter_file.setEnabled(choice == LOCAL)

    def show_running(self, model) -> None:
        """Say what runs, once the model is loaded (e.g. what precision "auto" chose)."""
        adapted = ", adapted to these images" if getattr(model, "adaptation", None) else ""
        self.summary_changed.emit(
            f"SAM2-{model.info.sam2_size}{adapted}, {model.config.precision} on {model.device}"
        )

    def restore(self, settings: WidgetSettings) -> None:
        """Show saved settings; the checkpoint environment variables take precedence."""
        self.sam2_file.edit.setText(os.environ.get(SAM2_ENV) or settings.sam2_checkpoint)
        self.adapter_file.edit.setText(os.environ.get(ADAPTER_ENV) or settings.adapter_checkpoint)
        model = LOCAL if os.environ.get(SAM2_ENV) else settings.model
        self.model_choice.setCurrentText(model if model in [*PUBLISHED, LOCAL] else "universal")
        self.device.setCurrentText(settings.device if settings.device in DEVICES else "auto")
        self.precision.setCurrentText(settings.precision if settings.precision in PRECISIONS else "auto")
        self.image_size.setValue(settings.image_size)
        self._choice_changed(self.model_choice.currentText())
        self._describe()

    def settings(self) -> WidgetSettings:
        return WidgetSettings(
            self.model_choice.currentText(),
            self.sam2_file.edit.text().strip(),
            self.adapter_file.edit.text().strip(),
            self.device.currentText(),
            self.precision.currentText(),
            self.image_size.value(),
        )

    def apply_record(self, model: dict, settings: dict) -> None:
        """Show the model and settings a run record names (values already validated)."""
        if model.get("name") in [*PUBLISHED, LOCAL]:
            self.model_choice.setCurrentText(model["name"])
        for field, edit in (
            ("sam2_checkpoint", self.sam2_file.edit),
            ("adapter_checkpoint", self.adapter_file.edit),
        ):
            if model.get(field):
                edit.setText(str(model[field]))
        for field, combo in (("device", self.device), ("precision", self.precision)):
            if settings.get(field) in [combo.itemText(i) for i in range(combo.count())]:
                combo.setCurrentText(settings[field])
        if isinstance(settings.get("image_size"), int):
            self.image_size.setValue(settings["image_size"])
