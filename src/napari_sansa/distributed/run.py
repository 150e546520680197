"""A file run on a Dask cluster: plan the outputs, set the model up on the workers, submit
batches of targets, collect their records as they finish."""

from __future__ import annotations

import math
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_sansa.distributed.spec import ModelSpec
from napari_sansa.distributed.worker import (
    Item,
    SansaWorker,
    TargetResult,
    segment_batch,
    stop_run,
    wait_idle,
    worker_status,
)
from napari_sansa.engine.callbacks import Cancel, Progress, is_cancelled
from napari_sansa.engine.errors import SansaError
from napari_sansa.files.outputs import (
    existing,
    output_paths,
    reference_classes,
    refuse_existing_labels,
    remove_leftovers,
)

TASK_OVERHEAD_S = 0.04  # per task: 32 ms measured on 2 overloaded cores (benchmarks/cluster.py), rounded up
OVERHEAD_SHARE = 0.02  # tasks are sized so that the overhead is at most this share of their compute
CHECKS_PER_TASK = 64  # finished outputs read back per task on --resume (no compute)
RETRIES = 2  # reruns of a task that raised (a worker that died is handled by the scheduler)
STOP_TIMEOUT_S = 120.0  # on cancel, how long tasks in progress may take to finish their target


@dataclass
class RunSummary:
    """What a cluster run did: one record per target, in the targets' order."""

    results: list[TargetResult]
    cancelled: bool = False
    seconds: float = 0.0
    first_result_seconds: float | None = None
    targets_per_task: int = 0
    tasks: int = 0
    workers: int = 0
    seconds_per_target: float = 0.0  # as measured by the workers on the references
    setup_seconds: float = 0.0  # until every worker had loaded the model
    leftovers_removed: int = 0
    notes: list[str] = field(default_factory=list)

    def _with(self, status: str) -> list[TargetResult]:
        return [r for r in self.results if r.status == status]

    @property
    def written(self) -> list[TargetResult]:
        return self._with("written")

    @property
    def skipped(self) -> list[TargetResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[TargetResult]:
        return self._with("failed")


def task_size(seconds_per_target: float, n_targets: int, n_workers: int, model_batch: int = 1) -> int:
    """Targets per task: enough that the per-task overhead stays under 2 % of the compute, few
    enough that every worker gets at least two tasks (for balance and early results)."""
    per_target = max(seconds_per_target, 1e-3)
    size = math.ceil(TASK_OVERHEAD_S / (OVERHEAD_SHARE * per_target))
    size = math.ceil(size / model_batch) * model_batch  # whole encoder batches
    return max(1, min(size, math.ceil(n_targets / (2 * max(1, n_workers)))))


def _chunks(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _workers(client, timeout: float) -> dict[str, dict]:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise SansaError(
            f"No Dask worker joined the scheduler {client.scheduler.address} in {timeout:.0f} s."
        ) from None
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # before distributed 2025, every worker was listed anyway
        return client.scheduler_info()["workers"]


def _siblings(client, workers: dict[str, dict]) -> dict[tuple[str, int], int]:
    """Workers per (host, parent process): those started together (a local cluster, one job's
    nanny) share their machine's cores; workers of separate jobs have cores of their own."""
    parents = client.run(os.getppid)
    counts: dict[tuple[str, int], int] = {}
    for address, parent in parents.items():
        key = (workers[address]["host"], parent) if address in workers else None
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return counts


def _set_up(client, name: str, plugin: SansaWorker) -> dict[str, dict]:
    """Register the plugin (every worker loads the model); one clear error if any worker cannot."""
    if not plugin.spec.local_files:
        client.submit(plugin.spec.fetch, pure=False, key=f"{name}-download").result()  # once, shared
    client.register_plugin(plugin, name=name)
    statuses = client.run(worker_status, name)
    failed = {address: s["failure"] for address, s in statuses.items() if s["failure"]}
    if failed:
        address, reason = next(iter(failed.items()))
        others = f" (and {len(failed) - 1} other worker(s))" if len(failed) > 1 else ""
        raise SansaError(f"The Dask worker {address}{others} cannot load the model: {reason}")
    return statuses


def _failure_reason(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (
            f"it killed {exc.allowed_failures + 1} workers (out of memory, or a crash while "
            "reading or segmenting it)"
        )
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _stop(client, name: str, unfinished: list) -> None:
    """Drop the queued tasks, let those in progress finish their current target (outputs are
    written whole), then free the model on every worker."""
    try:
        if unfinished:
            client.run(stop_run, name)
            client.cancel(unfinished)
            client.run(wait_idle, name, STOP_TIMEOUT_S)
        client.unregister_worker_plugin(name)
    except Exception:  # the workers are gone already (cluster closed)
        pass


def segment(
    client,
    references,
    targets: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model: ModelSpec,
    targets_per_task: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress = None,
    cancel: Cancel = None,
    torch_threads: int | None = None,
    worker_timeout: float = 600.0,
    instances: str | None = None,
) -> RunSummary:
    """Segment image files on the workers of a ``distributed.Client``; labels go to ``out``.

    Each worker loads ``model`` once and encodes the ``references`` (a list of
    :class:`~napari_sansa.Reference`); tasks are batches of target paths, and each writes its
    label files itself (temporary file, then rename), named as the CLI names them. Existing
    label files stop the run unless ``resume`` (keep complete ones, do the rest) or
    ``overwrite``. ``progress(done, total)`` is called as targets finish; ``cancel`` (an Event
    or a callable) stops the run: queued tasks are dropped, outputs written so far stay. A target
    that cannot be read or segmented is reported in the summary and the others go on; so is a
    task whose targets keep killing their workers. ``torch_threads`` overrides each worker's
    share of its host's cores; ``worker_timeout`` is how long to wait for a first worker.
    ``instances`` ("watershed" or "sam") also writes each target's objects and their table.
    """
    from distributed import as_completed

    from napari_sansa.engine.inputs.prompts import Reference, resolve_reference
    from napari_sansa.files.images import ensure_writable_folder

    start = time.perf_counter()
    started_at = time.time()
    references = [references] if isinstance(references, Reference) else list(references)
    if not references:
        raise SansaError("No references: give at least one annotated image.")
    for index, reference in enumerate(references):  # bad prompts: said here, not by every worker
        resolve_reference(reference, index)
    overwrite = overwrite and not resume  # resuming keeps complete outputs, whatever else is asked
    targets = [Path(t).absolute() for t in targets]
    if not targets:
        raise SansaError("No target images.")
    out = ensure_writable_folder(Path(out).absolute())
    outputs = output_paths(targets, out, reference_classes(references))
    names = existing(out)
    if not (resume or overwrite):
        refuse_existing_labels(outputs, names)
    summary = RunSummary([], leftovers_removed=remove_leftovers(outputs, started_at) if resume else 0)
    items = [Item(str(t), str(o), overwrite) for t, o in zip(targets, outputs)]
    todo = [item for item, o in zip(items, outputs) if overwrite or o.name not in names]
    checks = [item for item, o in zip(items, outputs) if not overwrite and o.name in names]

    workers = _workers(client, worker_timeout)
    name = f"sansa-{uuid.uuid4().hex[:12]}"
    plugin = SansaWorker(
        model,
        references,
        siblings=_siblings(client, workers),
        torch_threads=torch_threads,
        instances=instances,
    )
    records: dict[str, TargetResult] = {}
    futures: dict = {}  # unfinished task -> its targets
    try:
        statuses = _set_up(client, name, plugin)
        summary.setup_seconds = time.perf_counter() - start
        summary.workers = len(statuses)
        summary.seconds_per_target = statistics.median(s["seconds_per_target"] for s in statuses.values())
        on_gpu = any(s["device"] == "cuda" for s in statuses.values())
        has_gpus = any(info.get("resources", {}).get("GPU") for info in workers.values())
        resources = {"GPU": 1} if on_gpu and has_gpus else None
        model_batch = model.config.batch_size or (8 if on_gpu else 1)
        size = targets_per_task or task_size(
            summary.seconds_per_target, len(todo), len(statuses), model_batch
        )
        summary.targets_per_task = size
        batches = _chunks(todo, size) + _chunks(checks, CHECKS_PER_TASK)

        def submit(batch: list[Item]):
            future = client.submit(
                segment_batch, name, batch, key=f"{name}-{summary.tasks}", retries=RETRIES,
                resources=resources, pure=False,
            )  # fmt: skip
            futures[future] = batch
            summary.tasks += 1
            return future

        pending = as_completed([submit(batch) for batch in batches])
        total = len(items)
        if progress is not None:
            progress(0, total)
        while not pending.is_empty():
            if is_cancelled(cancel):
                summary.cancelled = True
                break
            done = pending.next_batch(block=False)
            if not done:
                time.sleep(0.02)
                continue
            for future in done:
                batch = futures.pop(future)  # its result is released once read
                if future.status == "finished":
                    results = future.result()
                elif future.status == "error" and len(batch) > 1:
                    for item in batch:  # find the target that kills its workers; the others pass
                        pending.add(submit([item]))
                    continue
                else:
                    exc = future.exception() if future.status == "error" else None
                    reason = _failure_reason(exc) if exc is not None else f"task {future.status}"
                    results = [TargetResult(i.target, i.output, "failed", error=reason) for i in batch]
                for result in results:
                    records[result.target] = result
                if summary.first_result_seconds is None:
                    summary.first_result_seconds = time.perf_counter() - start
                if progress is not None:
                    progress(len(records), total)
    finally:
        _stop(client, name, list(futures))
    if not summary.cancelled:
        summary.leftovers_removed += remove_leftovers(outputs, time.time())
    summary.results = [records[item.target] for item in items if item.target in records]
    summary.seconds = time.perf_counter() - start
    return summary
