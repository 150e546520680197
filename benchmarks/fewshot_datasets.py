"""Few-shot benchmark datasets in the folder layouts the SANSA reference reads, and their episodes.

Each reader lists a dataset's test classes and each class's (image, mask) files; :func:`episodes`
draws the episodes from them with a seeded generator (the same seed, the same episodes). The
rules follow the reference's dataset classes (github.com/ClaudiaCuttano/SANSA, datasets/*.py,
layouts in its docs/data.md), written anew here:

- ``fss1000``: ``FSS-1000/data/<class>/<n>.jpg`` + ``<n>.png``; the test classes are listed in
  ``FSS-1000/splits/test.txt`` (240 classes; the list comes with the dataset archive the
  reference links). Every test image is a query once (2,400 episodes); supports are other
  images of its class.
- ``isic``: ``ISIC/ISIC2018_Task1-2_Training_Input/<1|2|3>/<id>.jpg`` (one folder per class),
  masks ``ISIC/ISIC2018_Task1_Training_GroundTruth/<id>_segmentation.png``.
- ``lung`` (chest X-ray): ``LungSegmentation/masks/<name>.png``, images
  ``LungSegmentation/CXR_png/<name>.png`` with a trailing ``_mask`` taken off the name; one class.
- ``deepglobe``: ``Deepglobe/filter_mask/<1..6>/<a>_<b>_<c>.png``, images
  ``Deepglobe/image/<a>_sat_<c>.jpg``.

The last three run 600 episodes by default, class ``i % classes`` in episode ``i``, with a
random query and supports of that class. Masks are read as grey levels, >= 128 the class.
Differences from the reference (so figures compare, the episodes are not the same ones): its
episodes come from NumPy's global generator, ours from ``numpy.random.default_rng(seed)``;
its k-shot supports are drawn one at a time and may repeat, ours are k distinct images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_sansa.engine.errors import SansaError

DEFAULT_EPISODES = 600  # the reference's count for ISIC, chest X-ray and DeepGlobe


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path


@dataclass(frozen=True)
class Episode:
    index: int
    class_name: str
    query: Sample
    supports: tuple[Sample, ...]


@dataclass
class FewShotDataset:
    """A dataset's test classes (in order) and each class's samples (sorted by file name)."""

    name: str
    root: Path
    classes: dict[str, list[Sample]] = field(default_factory=dict)
    every_query: bool = False  # FSS-1000: each image is a query once; else random queries

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def default_episodes(self) -> int:
        return sum(map(len, self.classes.values())) if self.every_query else DEFAULT_EPISODES


def _folder(root: Path, name: str) -> Path:
    """The dataset's own folder: ``root`` itself or ``root/name`` (the reference's ``data/``)."""
    root = Path(root)
    if (root / name).is_dir():
        return root / name
    if root.is_dir():
        return root
    raise SansaError(f"No folder {root}: give --root the {name} folder or the folder holding it.")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise SansaError(f"{path} not found: {what}.")
    return path


def _files(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == suffix and not p.name.startswith("."))


def _number(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


def fss1000(root: Path, split: str = "test") -> FewShotDataset:
    base = _folder(root, "FSS-1000")
    listing = _need(
        base / "splits" / f"{split}.txt",
        "the FSS-1000 archive the SANSA reference links (docs/data.md) has splits/trn.txt, val.txt, test.txt",
    )
    names = sorted(line.strip() for line in listing.read_text().splitlines() if line.strip())
    data = _need(base / "data", "FSS-1000 keeps one folder per class under data/")
    classes = {}
    for name in names:
        folder = _need(data / name, f"class {name!r} of {listing.name} has no folder")
        images = sorted(_files(folder, ".jpg"), key=_number)
        classes[name] = [
            Sample(p, _need(p.with_suffix(".png"), "each .jpg has its .png mask")) for p in images
        ]
    return FewShotDataset("fss1000", base, classes, every_query=True)


def isic(root: Path) -> FewShotDataset:
    base = _folder(root, "ISIC")
    images = _need(
        base / "ISIC2018_Task1-2_Training_Input", "ISIC images go in one folder per class (1, 2, 3)"
    )
    masks = _need(base / "ISIC2018_Task1_Training_GroundTruth", "ISIC masks go in one folder")
    classes = {
        name: [Sample(p, masks / f"{p.stem}_segmentation.png") for p in _files(images / name, ".jpg")]
        for name in ("1", "2", "3")
        if (images / name).is_dir()
    }
    return FewShotDataset("isic", base, classes)


def lung(root: Path) -> FewShotDataset:
    base = _folder(root, "LungSegmentation")
    masks = _need(base / "masks", "chest X-ray masks go in masks/")
    images = _need(base / "CXR_png", "chest X-ray images go in CXR_png/")
    samples = [Sample(images / (m.stem.removesuffix("_mask") + ".png"), m) for m in _files(masks, ".png")]
    return FewShotDataset("lung", base, {"1": samples})


def deepglobe(root: Path) -> FewShotDataset:
    base = _folder(root, "Deepglobe")
    masks = _need(base / "filter_mask", "DeepGlobe masks go in filter_mask/<class>/")
    images = _need(base / "image", "DeepGlobe images go in image/")
    classes = {}
    for name in ("1", "2", "3", "4", "5", "6"):
        if (masks / name).is_dir():
            samples = []
            for m in _files(masks / name, ".png"):
                parts = m.stem.split("_")
                if len(parts) != 3:
                    raise SansaError(f"DeepGlobe mask {m.name} is not named <id>_<kind>_<tile>.png.")
                samples.append(Sample(images / f"{parts[0]}_sat_{parts[2]}.jpg", m))
            classes[name] = samples
    return FewShotDataset("deepglobe", base, classes)


READERS = {"fss1000": fss1000, "isic": isic, "lung": lung, "deepglobe": deepglobe}


def read_dataset(name: str, root: Path) -> FewShotDataset:
    """The test classes of dataset ``name`` under ``root``; a clear error if the layout is not there."""
    if name not in READERS:
        raise SansaError(f"Unknown dataset {name!r}; choose one of {', '.join(READERS)}.")
    dataset = READERS[name](Path(root))
    for samples in dataset.classes.values():
        for sample in samples:
            _need(sample.image, f"the image of mask {sample.mask.name}")
            _need(sample.mask, f"the mask of image {sample.image.name}")
    if not dataset.classes or not any(dataset.classes.values()):
        raise SansaError(
            f"No {name} images under {dataset.root}; see benchmarks/fewshot_datasets.py for the layout."
        )
    return dataset


def episodes(
    dataset: FewShotDataset, shots: int = 1, count: int | None = None, seed: int = 0
) -> list[Episode]:
    """``count`` episodes (default: the dataset's protocol) with ``shots`` supports each, drawn
    reproducibly from ``seed``; supports are distinct images of the query's class, never the query."""
    if shots < 1:
        raise SansaError(f"--shots must be 1 or more, got {shots}.")
    short = [n for n, s in dataset.classes.items() if len(s) <= shots]
    if short:
        raise SansaError(
            f"{shots}-shot episodes need more than {shots} images per class; {short[0]!r} has fewer."
        )
    rng = np.random.default_rng(seed)
    names = dataset.class_names
    if dataset.every_query:
        queries = [(name, i) for name in names for i in range(len(dataset.classes[name]))]
        total = len(queries) if count is None else count
        if total != len(queries):  # a seeded subset (or repetition) of all queries
            order = np.concatenate([rng.permutation(len(queries)) for _ in range(-(-total // len(queries)))])
            queries = [queries[i] for i in order[:total]]
    else:
        total = dataset.default_episodes if count is None else count
        queries = []
        for i in range(total):
            name = names[i % len(names)]
            queries.append((name, int(rng.integers(len(dataset.classes[name])))))
    out = []
    for index, (name, q) in enumerate(queries):
        samples = dataset.classes[name]
        others = [i for i in range(len(samples)) if i != q]
        chosen = rng.choice(others, size=shots, replace=False)
        out.append(Episode(index, name, samples[q], tuple(samples[int(i)] for i in chosen)))
    return out


def read_mask(path: Path) -> np.ndarray:
    """A boolean mask from a mask file: grey level >= 128 is the class."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L")) >= 128


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
