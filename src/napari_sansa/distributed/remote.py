"""The client's side of a SANSA server: a model object that computes there.

:class:`RemoteSansa` has the run interface of :class:`~napari_sansa.engine.model.Sansa`
(``propagate``, ``estimate``, ``rank_for_annotation``) so that the command line's and the
widget's run loops drive it unchanged: images travel to the server as arrays, and labels,
scores (and logits, where a threshold slider needs them) come back. Nothing here imports
torch: a laptop client starts fast and stays small.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_sansa.distributed.credentials import client_security
from napari_sansa.distributed.host import (
    model_info,
    remote_estimate,
    remote_instances,
    remote_predict,
    remote_rank,
)
from napari_sansa.engine.callbacks import Cancel, OnError, Progress, is_cancelled
from napari_sansa.engine.errors import SansaError

CONNECT_TIMEOUT_S = 10.0  # a refused handshake (no or wrong certificate) ends within this
REQUEST_TIMEOUT_S = 120.0  # the first answer of a server (its model is loaded before it says ready)
POLL_S = 0.05  # how often a waiting run looks at its cancel event and the connection
AHEAD = 2  # targets in flight beyond the one computing: sending overlaps compute
KEPT_REFERENCE_SETS = 4


class ServerLost(SansaError):
    """The server stopped or the network dropped during a request."""


@dataclass(frozen=True)
class ServerModelInfo:
    """The server's model, as the widget shows it."""

    name: str
    sam2_size: str = ""
    sam2_checkpoint: str = ""  # the files are on the server: a saved session or export names none
    adapter_checkpoint: str = ""


@dataclass(eq=False)
class RemotePrediction:
    """A target's result from the server: ``labels``, ``scores`` and (if asked) ``logits``, as
    in :class:`~napari_sansa.engine.runs.results.Prediction`; :meth:`instances` asks the
    server, which keeps its recent predictions."""

    index: int
    labels: np.ndarray
    logits: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    tiles: int = 1
    missing: tuple = ()
    token: str = ""
    seconds: float = 0.0  # the server's compute, without the trip there and back
    server: RemoteSansa | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def score(self) -> float:
        """The lowest class score: how much the least certain class needs a look."""
        return min(self.scores.values()) if self.scores else 1.0

    def instances(self, method: str = "watershed", **options: Any):
        """Each object its own label (``Prediction.instances``), made on the server."""
        options.pop("model", None)
        if self.server is None:
            raise SansaError("This result is no longer connected to its server: run again.")
        return self.server.call(remote_instances, self.token, method, options)


def check_address(address: str) -> str:
    """A server address: ``tls://HOST:PORT`` only (the server speaks nothing else)."""
    if not address.startswith("tls://"):
        scheme = address.split("://")[0] + "://" if "://" in address else "no scheme"
        raise SansaError(
            f"{address}: a SANSA server is reached only over mutual TLS ({scheme} refused): "
            "give tls://HOST:PORT as the server printed it."
        )
    return address


def connect(address: str, credentials: str | os.PathLike, timeout: float = CONNECT_TIMEOUT_S) -> RemoteSansa:
    """A :class:`RemoteSansa` on the server at ``address``, with the client credentials (the
    server's ``DIR/client`` folder); one clear error within ``timeout`` if it is refused."""
    import logging

    security = client_security(credentials)
    check_address(address)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # our own lines say what happened
    client, info = _open(address, security, timeout)
    return RemoteSansa(client, address, info, security=security)


def _open(address: str, security, timeout: float = CONNECT_TIMEOUT_S) -> tuple[Any, dict]:
    """A Dask client of the server and what it says of its model."""
    from distributed import Client

    try:
        client = Client(address, security=security, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SansaError(
            f"Cannot connect to the SANSA server at {address} within {timeout:.0f} s (is it running, "
            "and are these its client credentials?)"
        ) from exc
    try:
        return client, client.submit(model_info, pure=False).result(timeout=REQUEST_TIMEOUT_S)
    except SansaError:
        client.close()
        raise
    except Exception as exc:
        client.close()
        raise SansaError(f"The SANSA server at {address} did not answer: {type(exc).__name__}") from exc


class RemoteSansa:
    """A model on a SANSA server, with the run interface of ``Sansa``."""

    def __init__(self, client, address: str, info: dict, *, logits: bool = False, security=None) -> None:
        self.client = client
        self.address = address
        self._security = security  # to connect again after the server restarted
        self.config = info["config"]
        self.info = ServerModelInfo(info["name"], info.get("sam2_size", ""))
        self.device = f"{info['device']} at {address}"
        self.logits = logits  # send each class's logits back too (the widget's threshold slider)
        self.adaptation = None
        self.encoder_passes = 0  # counted on the server, not here
        self._references: OrderedDict[str, Any] = OrderedDict()

    # ----------------------------------------------------------------- requests
    def _lost(self, done: int | None = None) -> ServerLost:
        self._references.clear()  # the server's copies are gone with it
        kept = "" if done is None else f" after {done} result(s); finished results are kept"
        return ServerLost(
            f"The SANSA server at {self.address} stopped or the network dropped{kept}. "
            "Reconnect and run again (only what is missing)."
        )

    def _result(self, future, cancel: Cancel = None, done: int | None = None):
        """A request's answer (``None`` if ``cancel`` came first); :class:`ServerLost` if the
        connection goes meanwhile (the client then cancels its futures, which ends the wait)."""
        from concurrent.futures import CancelledError

        finished = threading.Event()
        future.add_done_callback(lambda _: finished.set())
        while not finished.wait(POLL_S):
            if self.client.status not in ("running", "connecting", "newly-created"):
                raise self._lost(done)
            if cancel is not None and is_cancelled(cancel):
                return None
        try:
            return future.result()
        except (CancelledError, OSError) as exc:
            raise self._lost(done) from exc

    def _connected(self) -> None:
        """Connect again if the connection was lost (the server restarted): a new run just works."""
        if self.client.status in ("running", "connecting", "newly-created") or self._security is None:
            return
        with contextlib.suppress(Exception):
            self.client.close(timeout=1)
        self.client, info = _open(self.address, self._security)
        self.config = info["config"]

    def call(self, function, *args: Any):
        """Run ``function(*args)`` on the server and return its answer."""
        self._connected()
        return self._result(self.client.submit(function, *args, pure=False))

    def _referenced(self, references) -> Any:
        """The references on the server, sent once per set (kept while this client lives)."""
        from dask.base import tokenize

        from napari_sansa.engine.inputs.prompts import Reference

        self._connected()
        references = [references] if isinstance(references, Reference) else list(references)
        if not references:
            raise SansaError("No references: give at least one annotated image.")
        token = tokenize(references)
        if token not in self._references:
            try:
                self._references[token] = self.client.scatter(references, hash=False, broadcast=True)
            except (OSError, TimeoutError) as exc:
                raise self._lost() from exc
            while len(self._references) > KEPT_REFERENCE_SETS:
                self._references.popitem(last=False)
        self._references.move_to_end(token)
        return self._references[token]

    # ----------------------------------------------------------------- the run interface
    def estimate(self, references, targets: int | Sequence, **tiling: Any):
        """``Sansa.estimate``, measured on the server; targets travel as their sizes only."""
        if not isinstance(targets, int):
            targets = [_size(target) for target in targets]
        return self.call(remote_estimate, self._referenced(references), targets, tiling)

    def propagate(
        self,
        references,
        targets: Iterable,
        *,
        sequential: bool = False,
        cancel: Cancel = None,
        progress: Progress = None,
        on_error: OnError = None,
        on_tile_error: OnError = None,
        output: Any = None,
        keep_logits: bool = False,
        on_tile: Any = None,
        **tiling: Any,
    ) -> Iterator[RemotePrediction]:
        """``Sansa.propagate`` on the server, target by target (the next ones are sent while one
        computes). Targets must be in memory (numpy arrays or ``Image``); a lazy one (zarr,
        dask, pyramid) is reported to ``on_error`` as a local run reports an unreadable one."""
        if sequential:
            raise SansaError(
                "Sequential targets (a time series) are not segmented on a server yet: run them here."
            )
        return self._run(self._referenced(references), targets, tiling, cancel, progress, on_error)

    def _run(self, references, targets, tiling, cancel, progress, on_error) -> Iterator[RemotePrediction]:
        total = len(targets) if hasattr(targets, "__len__") else 0
        pending: deque = deque()
        done = 0
        source = iter(enumerate(targets))
        try:
            while True:
                while len(pending) <= AHEAD and not is_cancelled(cancel):
                    item = next(source, None)
                    if item is None:
                        break
                    pending.append(self._send(references, *item, tiling, on_error))
                if not pending:
                    return
                future = pending.popleft()
                if future is None:
                    continue
                answer = self._result(future, cancel, done)
                if answer is None:  # cancelled
                    return
                done += 1
                if progress is not None:
                    progress(done, total)
                if "error" in answer:
                    _fail(on_error, answer["index"], SansaError(answer["error"]))
                    continue
                yield RemotePrediction(**answer, server=self)
        finally:
            self.client.cancel([f for f in pending if f is not None])

    def _send(self, references, index: int, image: Any, tiling: dict, on_error: OnError):
        if not _in_memory(image):
            _fail(
                on_error,
                index,
                SansaError(
                    "large images (zarr, pyramids) are segmented on the server's machine, not sent to it"
                ),
            )
            return None
        try:
            return self.client.submit(
                remote_predict, references, index, image, tiling, self.logits, pure=False
            )
        except (OSError, TimeoutError) as exc:
            raise self._lost() from exc

    def rank_candidates(self, references, targets: Sequence, *, scores: Sequence | None = None) -> list:
        """``annotation_ranking.rank_candidates`` on the server: each target's case, first first."""
        return self.call(remote_rank, self._referenced(references), list(targets), scores)

    def rank_for_annotation(
        self, references, targets: Sequence, *, scores: Sequence | None = None
    ) -> list[int]:
        """``Sansa.rank_for_annotation`` on the server."""
        return [c.index for c in self.rank_candidates(references, targets, scores=scores)]

    def propagate_stack(self, *args: Any, **kwargs: Any):
        raise SansaError(
            "Stacks are propagated through SAM2's memory on this computer only, not on a server yet."
        )

    def adapt(self, *args: Any, **kwargs: Any):
        raise SansaError("Adapting the model runs on this computer: choose Compute on: this computer.")

    def close(self) -> None:
        """Disconnect (the server keeps running, and its caches)."""
        self._references.clear()
        with contextlib.suppress(Exception):  # already gone
            self.client.close(timeout=2)


def _pixels(target: Any) -> Any:
    from napari_sansa.engine.inputs.images import Image

    return target.data if isinstance(target, Image) else target


def _in_memory(target: Any) -> bool:
    """Whether a target can be sent whole (a numpy array, or an ``Image`` of one)."""
    return isinstance(_pixels(target), np.ndarray)


def _size(target: Any) -> tuple[tuple, str]:
    """A target's shape and dtype: all an estimate needs of it."""
    data = _pixels(target)
    return tuple(np.shape(data)), np.dtype(getattr(data, "dtype", np.uint8)).str


def _fail(on_error: OnError, index: int, error: SansaError) -> None:
    if on_error is None:
        raise error
    on_error(index, error)
