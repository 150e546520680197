"""Loading the model the widget's settings name: the one function the model's owner calls.

It runs in a worker thread (:meth:`.core.work_queue.ModelOwner.model_for`), so the engine
(and torch) is imported only then and napari starts without it. Another kind of model (one
served elsewhere) comes in by handing the owner another function of the same shape.
"""

from __future__ import annotations

from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin.core.settings import WidgetSettings
from napari_sansa.plugin.panels.model import LOCAL


def load_model(settings: WidgetSettings):
    """A new model made from the settings (published weights, or local files)."""
    from napari_sansa.engine.config import SansaConfig
    from napari_sansa.engine.model import Sansa

    config = SansaConfig(device=settings.device, precision=settings.precision, image_size=settings.image_size)
    if settings.model == LOCAL:
        if not (settings.sam2_checkpoint and settings.adapter_checkpoint):
            raise SansaError("Choose a SAM2 checkpoint and a SANSA adapter file, or a published model.")
        return Sansa.from_checkpoints(settings.sam2_checkpoint, settings.adapter_checkpoint, config=config)
    return Sansa.from_pretrained(settings.model, config=config, progress=False)
