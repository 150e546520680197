"""The server's side of a remote model: the model loaded once per worker, and the tasks that
clients submit (arrays in, labels, logits and scores out).

The model keeps its feature cache across requests: images are keyed by a hash of their pixels,
so an image sent again (a preview update, a rerun) is not encoded again.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from distributed import WorkerPlugin, get_worker

from napari_sansa.distributed.spec import ModelSpec
from napari_sansa.distributed.worker import THREADS_ENV, usable_cpus
from napari_sansa.engine.errors import SansaError

PLUGIN = "sansa-server"
KEPT_PREDICTIONS = 16  # recent predictions kept for their objects (``instances``), oldest dropped


class ModelHost(WorkerPlugin):
    """Loads the model once on its worker, for every client's requests."""

    name = PLUGIN

    def __init__(self, model: ModelSpec, workers: int = 1) -> None:
        self.spec = model
        self.workers = workers
        self.__setstate__({})

    def __getstate__(self) -> dict:
        return {"spec": self.spec, "workers": self.workers}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.model = None
        self.failure = ""
        self.ready = threading.Event()
        self.kept: OrderedDict[str, Any] = OrderedDict()
        self.lock = threading.Lock()

    async def setup(self, worker) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._load)

    def _load(self) -> None:
        import os

        try:
            import torch

            configured = int(os.environ.get(THREADS_ENV, "0") or 0)
            torch.set_num_threads(configured or max(1, usable_cpus() // max(1, self.workers)))
            self.model = self.spec.build(keep_features=True)
        except SansaError as exc:
            self.failure = str(exc)
        except Exception as exc:  # one line for the server's log, never a worker traceback
            self.failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            self.ready.set()

    def teardown(self, worker) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None

    def loaded(self):
        """The model, once loaded; a clear error if it could not be."""
        self.ready.wait()
        if self.model is None:
            raise SansaError(f"The server cannot load its model: {self.failure}")
        return self.model

    def keep(self, prediction) -> str:
        """Keep a prediction for a later ``instances`` request; its token."""
        token = uuid.uuid4().hex
        with self.lock:
            self.kept[token] = prediction
            while len(self.kept) > KEPT_PREDICTIONS:
                self.kept.popitem(last=False)
        return token


def _host() -> ModelHost:
    plugin = get_worker().plugins.get(PLUGIN)
    if plugin is None:
        raise SansaError("The server's worker has no model (it is starting or stopping).")
    return plugin


def host_status(dask_worker=None) -> dict:
    """Run on every worker once the server starts: did the model load, on which device."""
    plugin = dask_worker.plugins.get(PLUGIN)
    if plugin is None:
        return {"failure": "the model was not set up", "device": ""}
    plugin.ready.wait()
    model = plugin.model
    return {"failure": plugin.failure, "device": "" if model is None else str(model.device)}


def model_info() -> dict:
    """What a client shows and needs of the server's model: its name, config and device."""
    model = _host().loaded()
    return {
        "name": model.info.name,
        "sam2_size": model.info.sam2_size,
        "config": model.config,
        "device": str(model.device),
    }


def _stand_in(shape: tuple, dtype: str) -> np.ndarray:
    return np.broadcast_to(np.zeros((), np.dtype(dtype)), shape)


def remote_estimate(references: list, targets: int | list, options: dict):
    """``Sansa.estimate`` on the server; targets come as counts or (shape, dtype) stand-ins."""
    model = _host().loaded()
    if not isinstance(targets, int):
        targets = [_stand_in(*target) for target in targets]
    return model.estimate(references, targets, **options)


def remote_predict(references: list, index: int, image: Any, options: dict, logits: bool) -> dict:
    """One target through the server's model: its labels, scores and (if asked) logits.

    A target that cannot be segmented comes back as ``{"error": message}`` (the client skips
    it as a local run does); anything else raises.
    """
    host = _host()
    model = host.loaded()
    errors: list[str] = []
    start = time.perf_counter()
    run = model.propagate(references, [image], on_error=lambda i, e: errors.append(str(e)), **options)
    found = next(iter(run), None)
    seconds = time.perf_counter() - start
    if found is None:
        return {"index": index, "error": errors[0] if errors else "it could not be segmented"}
    return {
        "index": index,
        "labels": np.asarray(found.labels),
        "logits": {c: np.asarray(v) for c, v in found.logits.items()} if logits else {},
        "scores": dict(found.scores),
        "tiles": found.tiles,
        "missing": tuple(found.missing),
        "token": host.keep(found),
        "seconds": seconds,
    }


def remote_instances(token: str, method: str, options: dict):
    """The objects of a prediction this server made recently (``Prediction.instances``)."""
    host = _host()
    with host.lock:
        prediction = host.kept.get(token)
    if prediction is None:
        raise SansaError(
            "The server no longer holds this prediction (it restarted, or many came since): run again."
        )
    return prediction.instances(method, model=host.loaded(), **options)


def remote_rank(references: list, targets: Sequence, scores: Sequence | None) -> list:
    """Which target to annotate next (``rank_candidates``: each target's case), on the server."""
    from napari_sansa.engine.runs.annotation_ranking import rank_candidates

    return rank_candidates(_host().loaded(), references, list(targets), scores=scores)
