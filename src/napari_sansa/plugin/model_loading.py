"""Loading the model a run asks for: in the worker thread, reusing the loaded one if it fits.

The engine (and torch) is imported only when the worker calls the loader, so napari starts
without it. A model is reused while every setting it was made with stays the same.
"""

from __future__ import annotations

from collections.abc import Callable

from napari_sansa.engine.callbacks import Cancel
from napari_sansa.engine.errors import SansaError
from napari_sansa.plugin.core.settings import WidgetSettings
from napari_sansa.plugin.panels.model import LOCAL


def model_loader(
    settings: WidgetSettings, cached, cached_key: tuple | None, download=None, cancel: Cancel = None
) -> tuple[tuple, Callable]:
    """The settings' key and a function that returns their model: ``cached`` if made with that key.

    A published model's download reports to ``download`` (a :class:`.DownloadBar`) and stops at
    once when ``cancel`` is set."""
    key = settings.model_key()

    def get_model():
        from napari_sansa.engine.config import SansaConfig
        from napari_sansa.engine.model import Sansa

        if cached is not None and cached_key == key:
            return cached
        config = SansaConfig(
            device=settings.device, precision=settings.precision, image_size=settings.image_size
        )
        if settings.model == LOCAL:
            if not (settings.sam2_checkpoint and settings.adapter_checkpoint):
                raise SansaError("Choose a SAM2 checkpoint and a SANSA adapter file, or a published model.")
            return Sansa.from_checkpoints(
                settings.sam2_checkpoint, settings.adapter_checkpoint, config=config
            )
        try:
            report = download.report if download is not None else False
            return Sansa.from_pretrained(settings.model, config=config, progress=report, cancel=cancel)
        finally:
            if download is not None:
                download.end()

    return key, get_model
