"""The adaptation loop: episodes, the reference loss, held-out scoring and early stopping.

Only the adapters train (optionally also SAM2's mask decoder); everything else stays frozen.
It works on the :class:`~napari_sansa.engine.runtime.runtime.Runtime` (the layer below the
``Sansa`` facade). The held-out images are scored the way a run segments them
(:func:`~napari_sansa.engine.runs.predicting.propagate` with the training images as references)
before training and every ``evaluate_every`` steps; the best scored state is kept, and is what
the runtime holds when this returns, also after a cancel.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from napari_sansa.engine.adaptation.augment import IDENTITY
from napari_sansa.engine.adaptation.episodes import (
    Annotated,
    Episode,
    EpisodeSampler,
    View,
    annotated_images,
    hold_out,
)
from napari_sansa.engine.adaptation.loss import mask_loss
from napari_sansa.engine.adaptation.report import AdaptProgress, AdaptReport
from napari_sansa.engine.adaptation.trunk import SplitEncoder
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import model_input
from napari_sansa.engine.inputs.prompts import DensePrompt, Reference, mask_in_model_frame, sam_point_inputs
from napari_sansa.engine.metrics.scores import score_classes
from napari_sansa.engine.network.adapters import adapter_modules
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.network.memory import (
    decode_mask_prompt,
    decode_point_prompt,
    decode_target,
    encode_memory,
)
from napari_sansa.engine.runs import predicting
from napari_sansa.engine.runs.tiling import TileOptions
from napari_sansa.engine.runtime.process_memory import peak_resident_bytes
from napari_sansa.engine.runtime.runtime import Runtime

PARTS = ("adapters", "adapters+decoder")
DEFAULT_STEPS = 300
DEFAULT_LEARNING_RATE = 1e-3
GRADIENT_CLIP = 1.0


def trained_parameters(sam: torch.nn.Module, parts: str) -> dict[str, torch.nn.Parameter]:
    """The parameters ``parts`` names, by their name in the model."""
    if parts not in PARTS:
        raise SansaError(f"Train one of {', '.join(PARTS)}, not {parts!r}.")
    adapters = {id(p) for a in adapter_modules(sam).values() for p in a.parameters()}
    chosen = {name: p for name, p in sam.named_parameters() if id(p) in adapters}
    if not chosen:
        raise SansaError("This model has no adapters to adapt.")
    if parts == "adapters+decoder":
        chosen.update({f"sam_mask_decoder.{n}": p for n, p in sam.sam_mask_decoder.named_parameters()})
    return chosen


def _view_input(view: View, image_size: int, dtype: torch.dtype, device: torch.device) -> Callable:
    return lambda: model_input(view.rgb(), image_size, dtype).to(device)


def episode_loss(
    encoder: SplitEncoder, episode: Episode, image_size: int, device: torch.device
) -> torch.Tensor:
    """The query's loss after its supports became memory, with gradients to the trained parts."""
    sam, dtype = encoder.sam, next(encoder.trunk.parameters()).dtype
    bank = {}
    for slot, view in enumerate(episode.supports):
        feats, _ = encoder.features(encoder.prefix(view.key, _view_input(view, image_size, dtype, device)))
        prompt = view.prompt(episode.class_id)
        if isinstance(prompt, DensePrompt):
            decoded = decode_mask_prompt(sam, feats, mask_in_model_frame(prompt.mask, image_size).to(device))
        else:
            inputs = sam_point_inputs(prompt, view.hw, image_size)
            decoded = decode_point_prompt(sam, feats, {k: v.to(device) for k, v in inputs.items()})
        bank[slot] = encode_memory(sam, feats, decoded.high_res, decoded.obj_ptr)
    query = episode.query
    feats, pos = encoder.features(encoder.prefix(query.key, _view_input(query, image_size, dtype, device)))
    decoded = decode_target(sam, feats, pos, len(bank), bank)
    mask = torch.from_numpy(query.prompt(episode.class_id).mask.astype(np.float32))[None, None]
    target = F.interpolate(mask, size=(image_size,) * 2, mode="bilinear", antialias=True) > 0.5
    return mask_loss(decoded.high_res, target.to(device))


def _fill_feature_cache(
    runtime: Runtime, encoder: SplitEncoder, images: Sequence[tuple[Annotated, Reference]]
) -> None:
    """Put each image's features into the runtime's cache from the split encoder, whose frozen
    part is cached: scoring then encodes nothing whole (the values are the same)."""
    runtime.clear()  # the encoder changed: cached features are stale
    dtype = runtime.dtype
    for image, ref in images:
        view = View(image, IDENTITY)
        feats, pos = encoder.features(
            encoder.prefix(view.key, _view_input(view, runtime.image_size, dtype, runtime.device))
        )
        runtime.feature_cache.put(
            runtime.prepare(ref.image).key,
            ImageFeatures(tuple(t.to(dtype) for t in feats.high_res), feats.top.to(dtype)),
        )
        runtime.learn_position(pos)  # an encoder pass, as any other


def held_out_scores(
    runtime: Runtime,
    training: Sequence[tuple[Annotated, Reference]],
    held: Sequence[tuple[Annotated, Reference]],
    encoder: SplitEncoder | None = None,
) -> dict[int, float]:
    """Each held-out reference's IoU (mean over its mask classes that training knows), segmented
    as a run would segment it, with the training references."""
    if encoder is not None:
        with torch.no_grad():
            _fill_feature_cache(runtime, encoder, [*training, *held])
    else:
        runtime.clear()
    known = {c for _, ref in training for c in ref.prompts}
    quiet = logging.getLogger(predicting.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "only the first and last references give memory": said once, by adapt
    try:
        references, images = [ref for _, ref in training], [ref.image for _, ref in held]
        run = predicting.propagate(runtime, references, images, TileOptions(None), predicting.Tiling())
        predictions = list(run)
    finally:
        quiet.setLevel(level)
    scores = {}
    for (image, _), prediction in zip(held, predictions):
        wanted = [c for c in image.mask_classes if c in known]
        truth = np.zeros(prediction.labels.shape, np.uint32)
        for class_id in wanted:
            truth[image.prompts[class_id].mask] = class_id
        table = score_classes(prediction.labels, truth, wanted)
        scores[image.index] = float(table["iou"].mean()) if wanted else float("nan")
    return scores


def thaw_cached_tensors(sam: torch.nn.Module) -> None:
    """Make tensors that modules cached during inference (e.g. RoPE's rotation frequencies)
    ordinary tensors, which autograd may save for the backward pass."""
    for module in sam.modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and value.is_inference():
                object.__setattr__(module, name, value.clone())
            elif isinstance(value, dict):
                for key, item in list(value.items()):
                    if isinstance(item, torch.Tensor) and item.is_inference():
                        value[key] = item.clone()


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "CUDA allocated"
    return peak_resident_bytes(), "process peak resident"


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def adapt(
    runtime: Runtime,
    references: Sequence[Reference],
    *,
    steps: int = DEFAULT_STEPS,
    validation: float = 0.25,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    shots: int = 3,
    augmentations: int = 8,
    evaluate_every: int | None = None,
    patience: int | None = None,
    train: str = "adapters",
    checkpointing: bool | None = None,
    seed: int = 0,
    progress: Callable[[AdaptProgress], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> AdaptReport:
    """Fine-tune the ``runtime``'s network in place on episodes from ``references``; see
    :meth:`Sansa.adapt`."""
    if isinstance(references, Reference):
        references = [references]
    references = list(references)
    if steps < 0:
        raise SansaError(f"Steps must be 0 or more, got {steps}.")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    training, held = hold_out(annotated_images(references), validation, rng)
    sampler = EpisodeSampler(training, max(1, shots), max(1, augmentations), rng)
    train_refs = [(image, references[image.index]) for image in training]
    held_refs = [(image, references[image.index]) for image in held]
    evaluate_every = evaluate_every or max(10, steps // 15)
    device = runtime.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    report = AdaptReport(
        tuple(image.index for image in held), tuple(image.index for image in training), trained=train
    )
    start = time.perf_counter()
    with runtime.lock:
        parameters = trained_parameters(runtime.sam, train)
        dtypes = {name: p.dtype for name, p in parameters.items()}
        for p in parameters.values():  # fp32 master weights, whatever the model's precision
            p.data = p.data.float()
            p.requires_grad_(True)
        encoder = SplitEncoder(
            runtime.sam, checkpointing=runtime.image_size >= 768 if checkpointing is None else checkpointing
        )

        def snapshot() -> dict[str, torch.Tensor]:
            return {name: p.detach().clone() for name, p in parameters.items()}

        def score(step: int) -> tuple[float, dict[int, float]]:
            with torch.no_grad():
                scores = held_out_scores(runtime, train_refs, held_refs, encoder)
            mean = float(np.nanmean(list(scores.values())))
            report.history.append((step, mean))
            return mean, scores

        best_state, best_iou = snapshot(), -1.0
        try:
            if held_refs:
                best_iou, report.before = score(0)
                report.after = dict(report.before)
            thaw_cached_tensors(runtime.sam)
            optimizer = torch.optim.AdamW(list(parameters.values()), lr=learning_rate, weight_decay=0.0)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
            autocast = (
                torch.autocast("cuda", dtype=torch.bfloat16)
                if device.type == "cuda"
                else contextlib.nullcontext()
            )
            stale = 0
            for step in range(1, steps + 1):
                if _cancelled(cancel):
                    report.cancelled = True
                    break
                with autocast:
                    loss = episode_loss(encoder, sampler.draw(), runtime.image_size, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(parameters.values()), GRADIENT_CLIP)
                optimizer.step()
                schedule.step()
                report.steps = step
                report.losses.append(loss.item())
                iou = None
                if held_refs and (step % evaluate_every == 0 or step == steps):
                    iou, scores = score(step)
                    if iou > best_iou:
                        best_iou, best_state, report.after, report.best_step = iou, snapshot(), scores, step
                        stale = 0
                    else:
                        stale += 1
                if progress is not None:
                    progress(
                        AdaptProgress(step, steps, report.losses[-1], iou, best_iou if held_refs else None)
                    )
                if patience is not None and stale >= patience:
                    report.stopped_early = True
                    break
            if not held_refs:
                best_state, report.best_step = snapshot(), report.steps
        finally:
            for name, p in parameters.items():  # the best state, in the model's precision, frozen
                p.requires_grad_(False)
                p.grad = None
                p.data = best_state[name].to(dtypes[name])
            encoder.clear()
            runtime.clear()
    report.seconds = time.perf_counter() - start
    report.peak_memory_bytes, report.peak_memory_kind = _peak_memory(device)
    return report
