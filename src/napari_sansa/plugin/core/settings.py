"""The widget's last choices, remembered between napari sessions in a small JSON file."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from napari_sansa import environment

CONFIG_ENV = environment.CONFIG_DIR


@dataclass
class WidgetSettings:
    """Model choice and run settings as the user last left them."""

    model: str = "universal"  # a published name or "local files"
    sam2_checkpoint: str = ""
    adapter_checkpoint: str = ""
    device: str = "auto"
    precision: str = "auto"
    image_size: int = 1024
    mask_values: str = "auto"  # how Labels layers not made by the widget are read
    stacks: str = "through the stack"
    output: str = "classes"  # or "objects"
    method: str = "watershed"  # how objects are found
    tile_size: str = "auto"  # large images: "auto", "512", "1024", "2048" or "whole image"
    overlap: int = 128  # pixels of the working resolution
    scale: float = 1.0  # working resolution relative to each image's pixels
    pixel_size: float = 0.0  # > 0: a working pixel size in the layers' units instead of ``scale``

    def model_key(self) -> tuple:
        """What the model is made from: a loaded model is reused while this stays the same."""
        return (
            self.model,
            self.sam2_checkpoint,
            self.adapter_checkpoint,
            self.device,
            self.precision,
            self.image_size,
        )


def settings_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]) / "settings.json"
    import platformdirs

    return Path(platformdirs.user_config_dir("napari-sansa", appauthor=False)) / "settings.json"


def load_settings() -> WidgetSettings:
    """Saved settings, or defaults when there are none or the file is damaged."""
    try:
        raw = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return WidgetSettings()
    return settings_from(raw)


def settings_from(raw: object) -> WidgetSettings:
    """Settings from a JSON object: each field as its default's type; a damaged one keeps its default."""
    if not isinstance(raw, dict):
        return WidgetSettings()
    values = {}
    for f in fields(WidgetSettings):
        value, kind = raw.get(f.name), type(getattr(WidgetSettings, f.name))
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            with contextlib.suppress(ValueError):
                values[f.name] = kind(value)
    return WidgetSettings(**values)


def save_settings(settings: WidgetSettings) -> None:
    path = settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # remembering choices is a convenience, never a reason to fail
