"""Loading the model the widget's settings name: the one function the model's owner calls.

It runs in a worker thread (:meth:`.core.work_queue.ModelOwner.model_for`), so the engine
(and torch) is imported only then and napari starts without it. Another kind of model (one
served elsewhere) comes in by handing the owner another function of the same shape.
"""

from __future__ import annotations

from napari_sansa.engine.callbacks import Cancel
from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin.core.settings import WidgetSettings
from napari_sansa.plugin.panels.model import LOCAL


def load_model(settings: WidgetSettings, cancel: Cancel = None, download=None):
    """A new model made from the settings (published weights, or local files). A published
    model's download reports to ``download`` (a :class:`.DownloadBar`) and stops at once when
    ``cancel`` (the asking task's) is set."""
    from napari_sansa.engine.config import SansaConfig
    from napari_sansa.engine.model import Sansa

    config = SansaConfig(device=settings.device, precision=settings.precision, image_size=settings.image_size)
    if settings.model == LOCAL:
        if not (settings.sam2_checkpoint and settings.adapter_checkpoint):
            raise SansaError("Choose a SAM2 checkpoint and a SANSA adapter file, or a published model.")
        return Sansa.from_checkpoints(settings.sam2_checkpoint, settings.adapter_checkpoint, config=config)
    try:
        report = download.report if download is not None else False
        return Sansa.from_pretrained(settings.model, config=config, progress=report, cancel=cancel)
    finally:
        if download is not None:
            download.end()
