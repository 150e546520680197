"""Regenerate the screenshots in docs/images from a real napari viewer.

Run under a (virtual) display: ``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python docs/screenshots.py``.
widget.png shows napari on a 1920x1080 screen after a run, laptop.png on 1366x768 (napari
maximised) with a live preview.
Uses random test weights unless NAPARI_SANSA_SAM2_CHECKPOINT/ADAPTER are set, so the masks
in the pictures show the plumbing, not SANSA's quality.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
import tifffile
from qtpy.QtWidgets import QApplication

from napari_sansa.engine.network.random_weights import write_random_checkpoints
from napari_sansa.samples import cells

OUT = Path(__file__).parent / "images"


LARGE, LAPTOP = (1920, 1080), (1366, 768)  # napari maximised on these screens


def new_viewer():
    """A napari viewer whose dock saves its session apart from the other pictures' (none offers
    another's Restore)."""
    os.environ["NAPARI_SANSA_SESSION_DIR"] = tempfile.mkdtemp()
    return napari.Viewer()


def maximised(viewer, size) -> None:
    """The window as napari maximised on a screen of ``size`` (Xvfb has no window manager to do it)."""
    viewer.window._qt_window.setGeometry(0, 0, *size)
    QApplication.instance().processEvents()


def settle(seconds: float = 1.0) -> None:
    """Let Qt finish laying out (the dock widens after its lists are rebuilt) before a screenshot."""
    app = QApplication.instance()
    start = time.time()
    while time.time() - start < seconds:
        app.processEvents()
        time.sleep(0.02)


def wait(widget, seconds=600):
    app = QApplication.instance()
    start = time.time()
    while widget.worker is not None and time.time() - start < seconds:
        app.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        app.processEvents()


def setup() -> None:
    """Random test weights unless real ones are named, and a throwaway settings folder."""
    OUT.mkdir(exist_ok=True)
    if not os.environ.get("NAPARI_SANSA_SAM2_CHECKPOINT"):
        sam2, adapter = write_random_checkpoints(tempfile.mkdtemp())
        os.environ["NAPARI_SANSA_SAM2_CHECKPOINT"], os.environ["NAPARI_SANSA_ADAPTER_CHECKPOINT"] = (
            str(sam2),
            str(adapter),
        )
    os.environ.setdefault("NAPARI_SANSA_CONFIG_DIR", tempfile.mkdtemp())


def main() -> int:
    setup()
    if sys.argv[1:] == ["check-references"]:  # only that one
        check_references()
        return 0
    if sys.argv[1:] == ["adapt"]:  # only that one
        adapting()
        return 0
    if sys.argv[1:] == ["sessions"]:  # only those
        sessions_and_server()
        return 0
    viewer, widget, _ = annotated_cells(LARGE)
    widget.prompt_image.setCurrentText("cells 1")
    points = widget.add_prompt_layer("points")
    points.add([[60, 80]])
    widget.run()
    wait(widget)
    for layer in viewer.layers:
        layer.visible = layer.name in ("cells 2", "cells 2 [SANSA]")
    viewer.layers["cells 2 [SANSA]"].opacity = 0.5
    widget.review.setCurrentRow(0)
    viewer.layers.selection.active = viewer.layers["cells 2 [SANSA]"]
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / "widget.png"), canvas_only=False)

    for layer in viewer.layers:
        layer.visible = layer.name in ("cells 0", "cells 0 prompts")
    viewer.layers.selection.active = viewer.layers["cells 0 prompts"]
    settle()
    viewer.screenshot(str(OUT / "reference.png"), canvas_only=False)
    viewer.close()
    laptop()
    own_data()
    through_the_stack()
    objects()
    large_images()
    check_references()
    adapting()
    sessions_and_server()
    print(
        "wrote widget.png, laptop.png, reference.png, own-data.png, stack.png, objects.png, large.png, "
        f"check-references.png, adapt.png, restore.png and server.png to {OUT}"
    )
    return 0


def annotated_cells(screen):
    """napari maximised on ``screen`` with the cells sample, the dock, and cells 0's nuclei and
    granules painted in a prompt layer: (viewer, widget, prompt layer)."""
    viewer = new_viewer()
    maximised(viewer, screen)
    viewer.open_sample("napari-sansa", "cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(512)
    widget.prompt_image.setCurrentText("cells 0")
    prompts = widget.add_prompt_layer("labels")
    prompts.data[...] = cells(6)[0][1]
    prompts.refresh()
    return viewer, widget, prompts


def laptop() -> None:
    """A 1366x768 laptop screen: the dock fits beside the canvas; a live preview while drawing."""
    viewer, widget, prompts = annotated_cells(LAPTOP)
    for layer in viewer.layers:
        layer.visible = layer.name in ("cells 0", "cells 0 prompts", "cells 1")
    viewer.layers.move(viewer.layers.index("cells 1"), len(viewer.layers))  # cells 1 on top: looked at
    viewer.layers.selection.active = prompts
    widget.live_preview.setChecked(True)
    app = QApplication.instance()
    start = time.time()
    while widget.preview.written == 0 and time.time() - start < 600:
        app.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        app.processEvents()
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / "laptop.png"), canvas_only=False)
    viewer.close()


def own_data() -> None:
    """An instance mask opened from a file and a points layer made with napari's own button."""
    from skimage.measure import label

    viewer = new_viewer()
    viewer.window._qt_window.resize(1500, 1000)
    viewer.open_sample("napari-sansa", "cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(512)
    folder = Path(tempfile.mkdtemp())
    tifffile.imwrite(folder / "cells 0_cellpose.tif", label(cells(6)[0][1] == 1).astype(np.uint16))
    viewer.open(str(folder / "cells 0_cellpose.tif"), layer_type="labels")
    widget.references_panel.mask_classes.setCurrentText("one class (instance mask)")
    widget.prompt_image.setCurrentText("cells 3")
    viewer.add_points([[120, 160]], name="Points", size=12, face_color="lime")
    widget.references_panel.class_name.setText("nucleus")
    widget.references_panel.class_name.textEdited.emit("nucleus")
    widget.run()
    wait(widget)
    for layer in viewer.layers:
        layer.visible = layer.name in ("cells 0", "cells 0_cellpose")
    viewer.layers.selection.active = viewer.layers["cells 0_cellpose"]
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / "own-data.png"), canvas_only=False)
    viewer.close()


def through_the_stack() -> None:
    """A time-lapse with one annotated plane, segmented through the stack."""
    viewer = new_viewer()
    viewer.window._qt_window.resize(1500, 1000)
    viewer.open_sample("napari-sansa", "drifting_cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(512)
    stack = viewer.layers["drifting cells"]
    seed = np.zeros(stack.data.shape, np.uint8)
    seed[4] = stack.data[4] > np.percentile(stack.data[4], 80)
    viewer.add_labels(seed, name="drifting cells seed")
    widget.run()
    wait(widget)
    viewer.layers["drifting cells [SANSA]"].opacity = 0.5
    viewer.layers["drifting cells seed"].visible = False
    widget.review.setCurrentRow(0)
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / "stack.png"), canvas_only=False)
    viewer.close()


def objects() -> None:
    """Output "objects": every object its own label, its table on hover, listed least confident
    first. The test weights segment nothing meaningful, so the objects shown are split from the
    sample's true mask by the same code a run uses (``Prediction.instances``)."""
    from napari_sansa.engine.runs.results import Prediction
    from napari_sansa.plugin.core.session import TargetKey
    from napari_sansa.plugin.viewer import layers as L

    viewer = new_viewer()
    viewer.window._qt_window.resize(1500, 1000)
    viewer.open_sample("napari-sansa", "cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.objects_panel.output.setCurrentText("objects")
    image, truth = cells(6)[2]
    found = Prediction(0, (truth > 0).astype(np.uint8), scores={1: 0.9}).instances(class_names={1: "cell"})
    source = L.image_source(viewer.layers["cells 2"])
    widget.objects_panel.write(source, TargetKey(source.image_id), found, running=False)
    for layer in viewer.layers:
        layer.visible = layer.name in ("cells 2", "cells 2 [SANSA objects]")
    viewer.layers.selection.active = viewer.layers["cells 2 [SANSA objects]"]
    widget.objects_panel.list.setCurrentRow(1)
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / "objects.png"), canvas_only=False)
    viewer.close()


def large_images() -> None:
    """A 1536x1920 mosaic (6x6 fields of the cells sample) opened as a 3-level pyramid and
    segmented in 512 px tiles from one annotated field, into a zarr-backed Labels layer."""
    viewer = new_viewer()
    viewer.window._qt_window.resize(1500, 1000)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(512)
    fields = cells(37, seed=5)
    viewer.add_image(fields[36][0], name="field", rgb=True, scale=(0.65, 0.65))
    mosaic = np.block([[[fields[6 * r + c][0]] for c in range(6)] for r in range(6)])
    pyramid = [np.ascontiguousarray(mosaic[:: 2**k, :: 2**k]) for k in range(3)]
    viewer.add_image(pyramid, name="mosaic", rgb=True, multiscale=True, scale=(0.65, 0.65))
    widget.prompt_image.setCurrentText("field")
    prompts = widget.add_prompt_layer("labels")
    prompts.data[fields[36][1] == 1] = 1
    prompts.refresh()
    widget.large_panel.expand(True)
    widget.large_panel.tile_size.setCurrentText("512")
    widget.large_panel.overlap.setValue(64)
    widget.run()
    wait(widget)
    from napari_sansa.engine.runs.tiling import TileOptions, tile_grid
    from napari_sansa.plugin.viewer.reference_layers import choose

    grid = tile_grid(mosaic.shape[:2], TileOptions(512, 64), 512)
    boxes = [[[t.rows.start, t.cols.start], [t.rows.stop - 1, t.cols.stop - 1]] for t in grid.tiles]
    viewer.add_shapes(
        boxes,
        shape_type="rectangle",
        name="tiles",
        edge_color="yellow",
        face_color="transparent",
        edge_width=4,
        scale=(0.65, 0.65),
        opacity=0.7,
    )
    choose(viewer.layers["tiles"], None)  # a picture of the grid, not boxes to segment
    widget._refresh_layers()
    for layer in viewer.layers:
        layer.visible = layer.name in ("mosaic", "mosaic [SANSA]", "tiles")
    viewer.layers["mosaic [SANSA]"].opacity = 0.4
    viewer.layers.selection.active = viewer.layers["mosaic [SANSA]"]
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / "large.png"), canvas_only=False)
    print(widget.status.text(), "| estimate:", widget.estimate)
    viewer.close()


def scroll_to(panel) -> None:
    """Scroll the dock (a scroll area) to one of its sections."""
    from qtpy.QtWidgets import QScrollArea

    scroll = panel.parent()
    while scroll is not None and not isinstance(scroll, QScrollArea):
        scroll = scroll.parent()
    if scroll is not None:
        scroll.ensureWidgetVisible(panel)


def check_references() -> None:
    """Check references on a laptop screen (1366x768): three mask references, each predicted
    from the other two; the table lists IoU per class, lowest first, and its first row shows
    that reference's image. Random test weights: the IoUs show the plumbing, not SANSA."""
    viewer = new_viewer()
    maximised(viewer, LAPTOP)
    viewer.open_sample("napari-sansa", "cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(512)
    widget.sections.section("How good is it?").expand()
    for i in range(3):
        widget.prompt_image.setCurrentText(f"cells {i}")
        prompts = widget.add_prompt_layer("labels")
        prompts.data[...] = cells(6)[i][1]
        prompts.refresh()
    panel = widget.evaluation_panel
    panel.check()
    wait(panel)
    panel.table.setCurrentCell(0, 0)  # the reference the others disagree with most
    lowest = panel.results["image"].iloc[0]
    for layer in viewer.layers:
        layer.visible = layer.name in (lowest, f"{lowest} prompts")
    viewer.reset_view()
    scroll_to(panel)
    settle()
    viewer.screenshot(str(OUT / "check-references.png"), canvas_only=False)
    print(panel.status.text())
    viewer.close()


def adapting() -> None:
    """The Adapt to these images… section while it trains on a laptop screen (1366x768; four
    images annotated with masks, random test weights)."""
    viewer = new_viewer()
    maximised(viewer, LAPTOP)
    viewer.open_sample("napari-sansa", "cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    widget.image_size.setValue(256)
    widget.sections.section("Adapt to these images").expand()
    truth = cells(6)
    for index in range(4):
        widget.prompt_image.setCurrentText(f"cells {index}")
        layer = widget.add_prompt_layer("labels")
        layer.data[truth[index][1] == 1] = 1
        layer.refresh()
    panel = widget.adapt_panel
    panel.start(steps=300)
    app = QApplication.instance()
    start = time.time()
    while len(panel.plot.ious) < 2 and panel.worker is not None and time.time() - start < 1800:
        app.processEvents()
        time.sleep(0.05)
    widget.run()  # asked during Adapt: it waits its turn, and the Run section's status line says so
    settle(0.5)
    scroll_to(panel)
    for layer in viewer.layers:
        layer.visible = layer.name in ("cells 0", "cells 0 prompts")
    settle()
    viewer.screenshot(str(OUT / "adapt.png"), canvas_only=False)
    widget.cancel()  # what the status line shows: Adapt, and the Run that waits for it
    wait(panel)
    viewer.close()


def sessions_and_server() -> None:
    """A laptop screen (1366x768) after napari was closed and opened again on the same images:
    the Session section offers Restore; then the Model section set to compute on a server."""
    viewer, widget, _ = annotated_cells(LAPTOP)  # its session saved in a folder of its own
    widget.run()
    wait(widget)
    app, start = QApplication.instance(), time.time()
    while not widget.sessions_panel.idle and time.time() - start < 120:  # saved
        app.processEvents()
        time.sleep(0.05)
    viewer.close()
    viewer = napari.Viewer()
    maximised(viewer, LAPTOP)
    viewer.open_sample("napari-sansa", "cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / "restore.png"), canvas_only=False)
    widget.sections.section("Model").expand()
    panel = widget.compute_panel
    panel.where.setCurrentText(panel.where.itemText(1))
    panel.address.setText("tls://gpu-box.lab:8786")
    panel.credentials.setText(str(Path.home() / "sansa-client"))
    scroll_to(panel)
    settle()
    viewer.screenshot(str(OUT / "server.png"), canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    sys.exit(main())
