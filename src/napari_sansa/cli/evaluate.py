"""``napari-sansa evaluate``: segment targets as ``segment`` does and score them against a truth.

Writes the same label files as ``segment``, and ``scores.csv`` (one row per image and class:
``image, class, iou, dice, true_pixels, predicted_pixels``) and, with ``--instances``,
``object_scores.csv`` (one row per image and IoU threshold). ``--leave-one-out`` scores the
references instead: each one with a mask predicted from the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from napari_sansa.cli.options import EXIT_USAGE, load_model, reference_inputs, target_paths
from napari_sansa.cli.segment import run_targets
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.metrics.scores import score_classes, score_objects
from napari_sansa.files.images import atomic_write, ensure_writable_folder
from napari_sansa.files.overwrite import refuse_existing

SCORES_FILE = "scores.csv"
OBJECT_SCORES_FILE = "object_scores.csv"


class ScoreSheet:
    """The rows of ``scores.csv`` and ``object_scores.csv``, image by image."""

    def __init__(self, class_names: dict[int, str]):
        self.class_names = class_names
        self.classes: list[pd.DataFrame] = []
        self.objects: list[pd.DataFrame] = []

    def add(self, image: str, classes: pd.DataFrame, objects: pd.DataFrame | None) -> None:
        self.classes.append(classes.assign(image=image))
        if objects is not None:
            self.objects.append(objects.assign(image=image))

    @staticmethod
    def _table(frames: list[pd.DataFrame]) -> pd.DataFrame:
        table = pd.concat(frames, ignore_index=True)
        return table[["image", *[c for c in table.columns if c != "image"]]]

    def write(self, out: Path) -> list[Path]:
        written = []
        for frames, name in ((self.classes, SCORES_FILE), (self.objects, OBJECT_SCORES_FILE)):
            if frames:
                table = self._table(frames)
                written.append(atomic_write(out / name, lambda tmp, t=table: t.to_csv(tmp, index=False)))
        return written

    def summary(self) -> str:
        """One line: the mean IoU of each class over the images scored (and F1 at IoU 0.5)."""
        if not self.classes:
            return "No image was scored."
        table = self._table(self.classes)
        means = table.groupby("class")["iou"].mean()
        parts = []
        for class_id, mean in means.items():
            name = self.class_names.get(int(class_id))
            parts.append(f"class {class_id}{f' ({name})' if name else ''} {mean:.3f}")
        line = f"Mean IoU over {table['image'].nunique()} image(s): {', '.join(parts)}"
        if self.objects:
            objects = self._table(self.objects)
            at = objects[np.isclose(objects["threshold"], 0.5)]
            if len(at):
                tp, fp, fn = (
                    int(at[c].sum()) for c in ("true_positives", "false_positives", "false_negatives")
                )
                f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
                line += f"; objects F1 at IoU 0.5: {f1:.3f} ({tp} of {tp + fn} found, {fp} false)"
        return line


def _refuse_old_scores(out: Path, overwrite: bool) -> None:
    refuse_existing([out / n for n in (SCORES_FILE, OBJECT_SCORES_FILE)], "score tables", overwrite=overwrite)


def evaluate(args: argparse.Namespace) -> int:
    if args.resume:
        raise SansaError("evaluate scores every target it segments: use --overwrite instead of --resume.")
    if args.leave_one_out:
        return leave_one_out_command(args)
    if args.truth is None:
        raise SansaError(
            "Give --truth DIR (the true label images of the targets), or --leave-one-out to score the "
            "references against their own masks."
        )
    from napari_sansa.files.truth import TruthFolder, read_truth

    truth = TruthFolder(args.truth)
    if truth.folder.resolve() == Path(args.out).resolve():
        raise SansaError(
            "--truth and --out are the same folder: the label images written would be read as truth."
        )
    _refuse_old_scores(Path(args.out), args.overwrite)
    references, reference_files, class_names, notes, _ = reference_inputs(args)
    targets = target_paths(args, reference_files)
    found = {path: truth.find(path) for path in targets}
    missing = [path for path, file in found.items() if file is None]
    for path in missing:
        print(f"napari-sansa: no truth for {path.name} in {truth.folder}: not scored", file=sys.stderr)
    if len(missing) == len(targets):
        raise SansaError(
            f"No target has a truth in {truth.folder} (<stem>.<ext> or <stem>_labels|_mask|_masks.<ext>)."
        )
    sheet, problems, modes = ScoreSheet(class_names), {}, set()

    def score(path: Path, prediction, objects) -> None:
        if found.get(path) is None:
            return
        try:
            true = read_truth(found[path], args.mask_classes)
            classes = score_classes(np.asarray(prediction.labels), true.classes)
            found_objects = None if objects is None else score_objects(objects.labels, true.objects)
        except SansaError as exc:
            problems[path] = str(exc)
            return
        if true.mode not in modes:  # how truths are read: said once per reading
            modes.add(true.mode)
            print(f"napari-sansa: {true.message}", file=sys.stderr)
        sheet.add(path.name, classes, found_objects)

    status = run_targets(args, references, targets, class_names, notes, after=score)
    scored = {image for frame in sheet.classes for image in frame["image"]}
    for path in targets:
        if found[path] is not None and path not in problems and path.name not in scored:
            problems[path] = "segmented in tiles (or not at all): not scored"
    for path, message in problems.items():
        print(f"napari-sansa: not scored: {path.name}: {message}", file=sys.stderr)
    for path in sheet.write(Path(args.out)):
        print(f"Wrote {path}", file=sys.stderr)
    print(sheet.summary())
    return status or (EXIT_USAGE if problems else 0)


def leave_one_out_command(args: argparse.Namespace) -> int:
    """Each mask reference predicted from the others, written and scored like a target."""
    from tqdm import tqdm

    from napari_sansa.engine.evaluation.leave_one_out import leave_one_out, mask_references
    from napari_sansa.files.class_table import write_class_table
    from napari_sansa.files.outputs import labels_name
    from napari_sansa.pipeline import TargetFiles, write_target

    if args.targets or args.truth is not None:
        raise SansaError(
            "--leave-one-out scores the references against their own masks: give no targets and no --truth."
        )
    references, _, class_names, notes, names = reference_inputs(args)
    out = ensure_writable_folder(args.out)
    _refuse_old_scores(out, args.overwrite)
    write_class_table(out, class_names, [c for ref in references for c in ref.prompts], args.overwrite)
    for note in notes:
        print(f"napari-sansa: {note}", file=sys.stderr)
    held = mask_references(references)
    model = load_model(args)
    sheet = ScoreSheet(class_names)
    bar = tqdm(total=len(held), unit="reference", desc="Leave-one-out", file=sys.stderr)
    try:
        for result in leave_one_out(model, references, instances=args.instances):
            name, labels = Path(names[result.index]), result.prediction.labels
            files = TargetFiles.of(name, out / labels_name(name, labels), result.instances is not None)
            write_target(files, labels, result.instances, replace=args.overwrite)
            sheet.add(name.name, result.classes, result.objects)
            bar.update(1)
    finally:
        bar.close()
    for path in sheet.write(out):
        print(f"Wrote {path}", file=sys.stderr)
    print(sheet.summary())
    return 0
