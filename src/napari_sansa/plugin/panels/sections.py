"""The dock's sections: titled parts that fold to one line, in the order of the work.

A panel joins the dock in one line, ``sections.add("Check references", panel)`` (``before=``
a section's title to place it earlier). A folded section shows its title and, if the panel
has a ``summary_changed`` signal, what the panel last said about itself (``Model: SAM2-tiny,
fp32 on cpu``). The sections sit in a scroll area, so that the dock fits a laptop screen even
with every section open; on a large screen they all show without scrolling.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import QFrame, QGroupBox, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget

MIN_VISIBLE_HEIGHT = 240  # the dock's minimum: sections scroll below this, napari keeps the rest
SCROLLBAR_ROOM = 20  # beside the sections, for the scroll bar as napari's style draws it


def stacked(*widgets: QWidget) -> QWidget:
    """Several panels as one section's body, one under the other."""
    body = QWidget()
    box = QVBoxLayout(body)
    box.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        box.addWidget(widget)
    return body


class Section(QWidget):
    """A title line with a fold arrow, and the panel under it."""

    def __init__(self, title: str, panel: QWidget, expanded: bool = True, tooltip: str = "") -> None:
        super().__init__()
        self.title, self.panel, self._summary = title, panel, ""
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        self.header = QToolButton(checkable=True, autoRaise=True)
        self.header.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.header.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.header.setStyleSheet("QToolButton { font-weight: bold; text-align: left; }")
        self.header.setToolTip(tooltip or f"Show or hide {title}")
        self.header.toggled.connect(self._toggled)
        box.addWidget(self.header)
        box.addWidget(panel)
        line = QFrame(frameShape=QFrame.HLine, frameShadow=QFrame.Sunken)
        box.addWidget(line)
        summary = getattr(panel, "summary_changed", None)
        if summary is not None:
            summary.connect(self.set_summary)
        self.header.setChecked(expanded)
        self._toggled(expanded)

    @property
    def expanded(self) -> bool:
        return self.header.isChecked()

    def expand(self, yes: bool = True) -> None:
        """Open (or fold) the section."""
        self.header.setChecked(yes)

    def set_summary(self, text: str) -> None:
        """What the title line says beside the title (e.g. the model that runs)."""
        self._summary = text
        self._show_title()

    def _toggled(self, yes: bool) -> None:
        self.header.setArrowType(Qt.DownArrow if yes else Qt.RightArrow)
        self.panel.setVisible(yes)
        self._show_title()

    def _show_title(self) -> None:
        self.header.setText(f"{self.title}: {self._summary}" if self._summary else self.title)


class Sections(QScrollArea):
    """The dock's sections, one under the other, scrolled when the screen is too short."""

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        inner = QWidget()
        self._box = QVBoxLayout(inner)
        self._box.setContentsMargins(4, 4, 4, 4)
        self._box.addStretch()
        self.setWidget(inner)
        inner.installEventFilter(self)  # a section grew wider: the dock follows, never cuts it
        self.sections: dict[str, Section] = {}

    def eventFilter(self, watched, event) -> bool:
        """QScrollArea keeps its size hints when its widget's change; pass the change on to napari's dock."""
        if watched is self.widget() and event.type() == QEvent.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def add(
        self,
        title: str,
        panel: QWidget,
        *,
        expanded: bool = True,
        before: str | None = None,
        tooltip: str = "",
    ) -> Section:
        """Add a panel as a section (last, or before the section titled ``before``); a group box's
        own title gives way to the section's."""
        if isinstance(panel, QGroupBox):
            panel.setTitle("")
            panel.setFlat(True)
        section = Section(title, panel, expanded, tooltip)
        index = self._box.count() - 1  # before the stretch
        if before in self.sections:
            index = self._box.indexOf(self.sections[before])
        self._box.insertWidget(index, section)
        self.sections[title] = section
        return section

    def section(self, title: str) -> Section:
        return self.sections[title]

    def titles(self) -> list[str]:
        """The sections' titles, top to bottom."""
        items = (self._box.itemAt(i).widget() for i in range(self._box.count()))
        return [item.title for item in items if isinstance(item, Section)]

    def sizeHint(self) -> QSize:
        """Everything, without scrolling, where the screen allows (QScrollArea's own hint is capped)."""
        inner = self.widget().sizeHint()
        return QSize(inner.width() + SCROLLBAR_ROOM, inner.height())

    def minimumSizeHint(self) -> QSize:
        """As wide as the widest section (no sideways scrolling), short enough for a laptop."""
        inner = self.widget().minimumSizeHint()
        return QSize(inner.width() + SCROLLBAR_ROOM, min(inner.height(), MIN_VISIBLE_HEIGHT))
