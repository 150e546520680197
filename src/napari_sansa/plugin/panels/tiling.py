"""The widget's *Large images* section: tile size, overlap and working resolution.

Large images are segmented in tiles at (or near) their native resolution instead of being
shrunk to the model's input. The resolution is a scale (1.0 = the image's own pixels, 0.5 =
half) or, for layers with a pixel size (their ``scale``), a working pixel size in the layer's
units, turned into each image's scale. The options of each target image are decided here,
on the main thread, and checked before a run starts (the engine's :class:`SansaError`).
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_sansa.plugin.core.session import ImageSource, Job

TILE_SIZES = {"auto": "auto", "512": 512, "1024": 1024, "2048": 2048, "whole image": None}
SCALE, PIXEL_SIZE = "scale", "pixel size"
DEFAULT_OVERLAP = 128


class LargeImagesPanel(QWidget):
    """Tile size, overlap and scale (or working pixel size) of a run's large images: one line
    that says them, opened to change them (most images need no change)."""

    def __init__(self, pixel_size_of_chosen=lambda: 1.0) -> None:
        super().__init__()
        self._chosen_pixel_size = pixel_size_of_chosen
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.header = QToolButton(checkable=True, autoRaise=True)
        self.header.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.header.setArrowType(Qt.RightArrow)
        self.header.setToolTip("How large images are segmented in tiles: open to change it")
        self.header.toggled.connect(self.expand)
        box.addWidget(self.header)
        self.body = QWidget()
        box.addWidget(self.body)
        form = QFormLayout(self.body)
        form.setContentsMargins(12, 0, 0, 0)
        self.tile_size = QComboBox(editable=True)
        self.tile_size.addItems(list(TILE_SIZES))
        self.tile_size.setToolTip(
            "Side of the tiles large images are segmented in, in pixels of the working resolution "
            "(choose one or type a number). auto: tile at the model's input size when the whole image "
            "would be shrunk more than 2x; whole image: never tile (the image is resized to the model's input)."
        )
        self.overlap = QSpinBox(minimum=0, maximum=8192, value=DEFAULT_OVERLAP)
        self.overlap.setToolTip(
            "How far neighbouring tiles overlap; results are blended there, without seams"
        )
        row = QHBoxLayout()
        row.addWidget(self.tile_size)
        row.addWidget(QLabel("overlap (px)"))
        row.addWidget(self.overlap)
        form.addRow("Tile size", row)
        self.resolution = QComboBox()
        self.resolution.addItems([SCALE, PIXEL_SIZE])
        self.resolution.setToolTip(
            "scale: relative to each image's pixels (1.0 native, 0.5 half); pixel size: a working pixel "
            "size in the image layers' units (their scale), the same physical resolution for every image"
        )
        self.value = QDoubleSpinBox(decimals=4, minimum=0.0001, maximum=1e6, value=1.0, singleStep=0.1)
        self.resolution.currentTextChanged.connect(self._resolution_changed)
        row = QHBoxLayout()
        row.addWidget(self.resolution)
        row.addWidget(self.value)
        form.addRow("Resolution", row)
        for changed in (
            self.tile_size.currentTextChanged,
            self.overlap.valueChanged,
            self.value.valueChanged,
            self.resolution.currentTextChanged,
        ):
            changed.connect(self._describe)
        self.expand(False)

    def expand(self, yes: bool) -> None:
        """Show or hide the settings (the line above them stays)."""
        if self.header.isChecked() != yes:
            self.header.setChecked(yes)  # comes back here through `toggled`
            return
        self.header.setArrowType(Qt.DownArrow if yes else Qt.RightArrow)
        self.body.setVisible(yes)
        self._describe()

    def _describe(self, *_) -> None:
        tile = self.tile_size.currentText().strip()
        tiles = "whole images" if tile == "whole image" else f"tiles {tile}"
        value = f"{self.value.value():g}"
        where = f"pixel size {value}" if self.pixel_size_mode else f"scale {value}"
        self.header.setText(f"Large images: {tiles}, overlap {self.overlap.value()}, {where}")

    def _resolution_changed(self, text: str) -> None:
        """Start from no change: scale 1.0, or the chosen image's own pixel size."""
        self.value.setValue(self._chosen_pixel_size() if text == PIXEL_SIZE else 1.0)

    @property
    def pixel_size_mode(self) -> bool:
        return self.resolution.currentText() == PIXEL_SIZE

    def options(self, source: ImageSource) -> dict:
        """``tile_size``, ``overlap`` and ``scale`` for one image, as ``propagate`` takes them."""
        value = float(self.value.value())
        scale = source.pixel_size / value if self.pixel_size_mode else value
        return {"tile_size": self.tile_size_value, "overlap": self.overlap.value(), "scale": scale}

    @property
    def tile_size_value(self) -> int | str | None:
        """The tile size as the engine takes it; a typed text that is no size is passed on as it
        is, for the engine's check to explain."""
        text = self.tile_size.currentText().strip()
        if text.isdigit():
            return int(text)
        return TILE_SIZES.get(text.lower(), text)

    def settings(self) -> dict:
        """The fields of :class:`WidgetSettings` this section keeps."""
        value = float(self.value.value())
        return {
            "tile_size": self.tile_size.currentText().strip(),
            "overlap": int(self.overlap.value()),
            "scale": 1.0 if self.pixel_size_mode else value,
            "pixel_size": value if self.pixel_size_mode else 0.0,
        }

    def restore(self, settings) -> None:
        if settings.tile_size in TILE_SIZES or settings.tile_size.isdigit():
            self.tile_size.setCurrentText(settings.tile_size)
        self.overlap.setValue(int(settings.overlap))
        pixel_size = float(settings.pixel_size)
        self.resolution.setCurrentText(PIXEL_SIZE if pixel_size > 0 else SCALE)
        self.value.setValue(pixel_size if pixel_size > 0 else float(settings.scale))


def plan_tiling(job: Job, panel: LargeImagesPanel, image_size: int) -> None:
    """Each target image's tiling options and tile count on the job; a :class:`SansaError`
    for options the engine refuses (overlap >= tile size, ...), before anything runs."""
    from napari_sansa.engine.runs.tiling import TileOptions, count_tiles

    for _, source in job.targets:
        if source.image_id in job.tiling:
            continue
        options = panel.options(source)
        tile = TileOptions(**options)
        tile.check()
        job.tiling[source.image_id] = options
        job.tiles[source.image_id] = count_tiles(source.hw, tile, image_size)
