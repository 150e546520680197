"""The run pipeline: one way to plan, run, write, resume and export a run over target files,
below the front ends (the command line, the Dask workers, the widget) and above ``files/``.

- :mod:`.protocol`: :class:`RunModel`, what the pipeline calls on a model (no torch here);
- :mod:`.targets`: :class:`TargetFiles`, what a target owes, the one order it is written in
  (:func:`write_target`) and when it is complete;
- :mod:`.large`: :class:`LargeTargets`, targets segmented in tiles or OME-Zarr stores;
- :mod:`.plan`: :func:`plan_run`, a run's outputs checked before any work, and ``resume``;
- :mod:`.run`: :class:`FileRun`, the targets through a model, reported through the engine's
  callbacks (``progress``, ``on_error``, ``cancel``);
- :mod:`.results`: what a widget run does with a prediction (its threshold) and its estimate.
"""

from __future__ import annotations

from napari_sansa.pipeline.plan import RunPlan, plan_run
from napari_sansa.pipeline.protocol import RunModel, RunPrediction
from napari_sansa.pipeline.run import FileRun, RunReport
from napari_sansa.pipeline.targets import TargetFiles, write_prediction, write_target

__all__ = [
    "FileRun",
    "RunModel",
    "RunPlan",
    "RunPrediction",
    "RunReport",
    "TargetFiles",
    "plan_run",
    "write_prediction",
    "write_target",
]
