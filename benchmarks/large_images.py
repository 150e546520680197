"""Large images benchmark: tiles, seconds, megapixels per second and memory by image side.

    .venv/bin/python benchmarks/large_images.py              # 1k-20k sides, input 256 (~10 min on 2 cores)
    .venv/bin/python benchmarks/large_images.py --sizes 1024 4096 --image-size 1024   # as trained

Each target is a uint16 zarr array on disk (chunks of 1024), read lazily; labels go into a zarr
array on disk. Every size runs in its own process, whose resident memory is sampled every 20 ms:
"RSS growth" is its peak during the run minus the memory before the run (model loaded and warm).
Tiles are 1024 image pixels with a 128 px overlap, as for SAM2 at its own input size; with
``--image-size 256`` each tile is shown to the model at 256 px, so the band buffers and the
reads are those of real tiles while the encoder (SAM2-tiny, random weights) costs 16x less than
at 1024: seconds here measure the pipeline around the model plus a small encoder.

Two checks do not time the model: with the heads replaced by an oracle that sees each tile's
pixels at the decoder's resolution (a quarter of the input side), a disc centred where four
tiles meet must come out as one connected mask, and synthetic nuclei of 8-15 px are counted as
recovered (IoU >= 0.5) by the tiled path and by a whole-image resize (the thumbnail): what each
path can resolve at best. Real weights were not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from page import write_section

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Large images"
TILE, OVERLAP, CHUNK = 1024, 128, 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """The highest resident memory seen while the block runs, sampled every 20 ms."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def write_target(path: Path, side: int, seed: int = 0):
    """A side x side uint16 zarr array of noise and bright blobs, written chunk by chunk."""
    import zarr

    array = zarr.create_array(store=str(path), shape=(side, side), chunks=(CHUNK, CHUNK), dtype="uint16")
    yy, xx = np.mgrid[:CHUNK, :CHUNK]
    blob = ((yy - 512) ** 2 + (xx - 512) ** 2 < 200**2) * 3000
    for r in range(0, side, CHUNK):
        for c in range(0, side, CHUNK):
            rng = np.random.default_rng((seed, r, c))
            h, w = min(CHUNK, side - r), min(CHUNK, side - c)
            array[r : r + h, c : c + w] = (rng.integers(500, 1500, (h, w)) + blob[:h, :w]).astype(np.uint16)
    return array


def one_size(side: int, image_size: int, folder: Path) -> dict:
    """Segment one side x side zarr target (run in a fresh process for its memory figures)."""
    import torch
    import zarr

    import napari_sansa as ns
    from napari_sansa.engine.network.random_weights import random_sansa_module

    target = write_target(folder / f"image-{side}.zarr", side)
    config = ns.SansaConfig(device="cpu", image_size=image_size, precision="fp32", disk_cache_bytes=0)
    model = ns.Sansa(random_sansa_module("tiny", image_size), config)
    reference_pixels = np.asarray(target[:CHUNK, :CHUNK])[::-1].copy()  # not one of the target's tiles
    reference = ns.Reference(reference_pixels, {1: ns.Mask(reference_pixels > 2500)})
    tiling = {"tile_size": TILE, "overlap": OVERLAP}
    model.segment([reference], [reference_pixels[:, ::-1]], **tiling)  # warm: reference encoded, threads up

    def output(index, hw, dtype):
        return zarr.create_array(
            store=str(folder / f"labels-{side}.zarr"), shape=hw, chunks=(CHUNK, CHUNK), dtype=dtype
        )

    passes = model.encoder_passes
    with PeakRSS() as rss:
        start = time.perf_counter()
        [prediction] = model.segment([reference], [ns.Image(target)], **tiling, output=output)
        seconds = time.perf_counter() - start
    return {
        "side": side,
        "tiles": prediction.tiles,
        "encoder_passes": model.encoder_passes - passes,  # tiles seen before come from the cache
        "seconds": seconds,
        "seconds_per_tile": seconds / prediction.tiles,
        "megapixels_per_second": side * side / 1e6 / seconds,
        "rss_growth_gib": (rss.peak - rss.start) / 2**30,
        "feature_cache_gib": model.features.nbytes / 2**30,  # part of the growth, up to its budget
        "threads": torch.get_num_threads(),
    }


def strip_target(height: int, width: int, scale: float = 1.0):
    """A lazy ``height x width`` uint16 dask array of noise and bright blobs, made chunk by chunk
    when a tile reads it (nothing of it is held, nothing on disk); below scale 1, a pyramid of it
    and a level at ``scale`` (as whole-slide images come), so that tiles are read at that level."""
    import dask.array as da

    import napari_sansa as ns

    if scale < 1:
        coarse = (round(height * scale), round(width * scale))
        return ns.Multiscale([strip_target(height, width), strip_target(*coarse)])

    yy, xx = np.mgrid[:CHUNK, :CHUNK]
    blob = ((yy - 512) ** 2 + (xx - 512) ** 2 < 200**2) * 3000

    def block(block_info=None):
        (r, _), (c, _) = block_info[None]["array-location"]
        h, w = block_info[None]["chunk-shape"]
        rng = np.random.default_rng((r, c))
        return (rng.integers(500, 1500, (h, w)) + blob[:h, :w]).astype(np.uint16)

    return da.map_blocks(block, dtype=np.uint16, chunks=da.core.normalize_chunks(CHUNK, (height, width)))


def one_strip(
    height: int,
    width: int,
    scale: float,
    classes: int,
    image_size: int,
    folder: Path,
    estimate_only: bool = False,
) -> dict:
    """Segment one lazy strip into a zarr array on disk (run in a fresh process for its memory);
    with ``estimate_only``, only the estimate."""
    import zarr

    import napari_sansa as ns
    from napari_sansa.engine.network.random_weights import random_sansa_module

    config = ns.SansaConfig(
        device="cpu", image_size=image_size, precision="fp32", disk_cache_bytes=0, cache_bytes=0
    )
    model = ns.Sansa(random_sansa_module("tiny", image_size), config)
    pixels = np.asarray(strip_target(CHUNK, CHUNK)[:CHUNK, :CHUNK])[::-1].copy()
    bounds = np.quantile(pixels, np.linspace(0, 1, classes + 2)[1:-1])
    prompts = {k + 1: ns.Mask(np.digitize(pixels, bounds) == k + 1) for k in range(classes)}
    reference = ns.Reference(pixels, prompts)
    tiling = {"tile_size": TILE, "overlap": OVERLAP, "scale": scale}
    model.segment([reference], [pixels[:, ::-1]], **tiling)  # warm: reference encoded, threads up
    target = strip_target(height, width, scale)
    target = target if isinstance(target, ns.Multiscale) else ns.Image(target)
    estimate = model.estimate([reference], [target], **tiling)
    if estimate_only:
        return {"estimate_gib": getattr(estimate, "run_bytes", 0) / 2**30}

    def output(index, hw, dtype):
        return zarr.create_array(
            store=str(folder / "labels.zarr"), shape=hw, chunks=(CHUNK, CHUNK), dtype=dtype
        )

    with PeakRSS() as rss:
        start = time.perf_counter()
        [prediction] = model.segment([reference], [target], **tiling, output=output)
        seconds = time.perf_counter() - start
    return {
        "height": height,
        "width": width,
        "scale": scale,
        "classes": classes,
        "image_size": image_size,
        "tiles": prediction.tiles,
        "seconds": seconds,
        "rss_growth_gib": (rss.peak - rss.start) / 2**30,
        "estimate_gib": getattr(estimate, "run_bytes", 0) / 2**30,  # not reported before issue 23
    }


def oracle_model(image_size: int):
    """A model whose heads see each tile's pixels at the decoder's resolution (no network)."""
    import torch
    import torch.nn.functional as F

    import napari_sansa as ns
    from napari_sansa.engine.network.random_weights import random_sansa_module
    from napari_sansa.engine.runs import tiled

    def predict(model, prepared, banks, frames):
        out = []
        for item in prepared:
            bright = torch.from_numpy(np.ascontiguousarray(item.image.data[..., 0]))[None, None]
            low = F.interpolate(bright, size=(image_size // 4,) * 2, mode="area")[0] - 0.5
            out.append((low.repeat(len(banks), 1, 1) * 20, [1.0] * len(banks)))
        return out

    tiled._predict = predict
    config = ns.SansaConfig(device="cpu", image_size=image_size, precision="fp32", disk_cache_bytes=0)
    return ns.Sansa(random_sansa_module("tiny", 256), config)


def nuclei(side: int, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Bright nuclei of 8-15 px across on a dark uint16 image, and their instance labels."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    labels = np.zeros((side, side), np.int32)
    for k in range(1, count + 1):
        r, c = rng.integers(10, side - 10, 2)
        rr, cc = disk((r, c), rng.uniform(4, 7.5), shape=labels.shape)
        labels[rr, cc] = k
    image = (1000 + 3000 * (labels > 0)).astype(np.uint16)
    return image, labels


def recovered(found: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of true objects matched by a found mask's object at IoU >= 0.5."""
    from skimage.measure import label
    from skimage.metrics import contingency_table

    pieces = label(found)
    table = contingency_table(truth, pieces).toarray()
    sizes_t, sizes_p = table.sum(1), table.sum(0)
    union = sizes_t[:, None] + sizes_p[None, :] - table
    iou = np.where(union > 0, table / np.maximum(union, 1), 0)[1:, 1:]
    return float((iou.max(1) >= 0.5).mean()) if iou.size else 0.0


def resolution_checks(image_size: int) -> dict:
    """Seams and small objects, with the oracle heads (the tiling and blending are real)."""
    import torch
    import torch.nn.functional as F
    from skimage.measure import label

    import napari_sansa as ns

    model = oracle_model(image_size)
    side = 3 * TILE
    yy, xx = np.mgrid[:side, :side]
    corner = TILE - OVERLAP // 2  # near where the first four tiles meet
    disc = (yy - corner) ** 2 + (xx - corner) ** 2 < 300**2
    image = (1000 + 3000 * disc).astype(np.uint16)
    ref = ns.Reference(image[:64, :64], {1: ns.Mask(np.ones((64, 64), bool))})
    options = {"tile_size": TILE, "overlap": OVERLAP}
    [seam] = model.segment([ref], [ns.Image(image, contrast_limits=(0, 4000))], **options)
    seam_pieces = int(label(seam.labels == 1).max())

    image, truth = nuclei(8192, 4000)
    [tiles] = model.segment([ref], [ns.Image(image, contrast_limits=(0, 4000))], **options)
    bright = torch.from_numpy((image > 2000).astype(np.float32))[None, None]
    low = F.interpolate(bright, size=(image_size // 4,) * 2, mode="area")
    thumb = F.interpolate(low, size=image.shape, mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5
    return {
        "seam_disc_pieces": seam_pieces,
        "seam_disc_iou": float((seam.labels == 1)[disc].sum() / ((seam.labels == 1) | disc).sum()),
        "nuclei": int(truth.max()),
        "nuclei_side": 8192,
        "recovered_tiled": recovered(tiles.labels == 1, truth),
        "recovered_thumbnail": recovered(thumb, truth),
        "oracle_image_size": image_size,
    }


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def section(results: dict, command: str) -> str:
    rows = [
        f"| {r['side']:,} | {r['tiles']} | {r['seconds']:.1f} | {r['seconds_per_tile']:.2f} | "
        f"{r['megapixels_per_second']:.2f} | {r['rss_growth_gib']:.2f} |"
        for r in results["sizes"]
    ]
    checks = results["checks"]
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured by `{command}` on {results['machine']}: one uint16 zarr target per side, read "
            f"lazily, labels written into a zarr array on disk; tiles of {TILE} px with a {OVERLAP} px "
            f"overlap shown to SAM2-tiny (random weights) at input {results['image_size']}. RSS growth: "
            "peak resident memory during the run minus before it (model loaded), sampled every 20 ms, "
            "each size in its own process.",
            "",
            "| side (px) | tiles | seconds | s per tile | megapixels/s | RSS growth (GiB) |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "Time grows linearly with the tiles. The RSS growth includes the feature cache, which "
            "keeps each tile's features (1 MiB at input 256, 16 MiB at 1024) up to its budget (an "
            "eighth of RAM, at most 1 GiB; `SansaConfig(cache_bytes=...)`); the rest is the band of "
            "blended logits, one tile high and as wide as the image, and the tiles in flight.",
            "",
            f"Seams (heads replaced by an oracle that sees each tile at the decoder's resolution, "
            f"input {checks['oracle_image_size']}): a disc of 600 px centred where four tiles meet "
            f"comes out in {checks['seam_disc_pieces']} piece(s), IoU {checks['seam_disc_iou']:.3f} "
            f"with the disc. Small objects, same oracle: of {checks['nuclei']:,} nuclei 8-15 px across "
            f"on a {checks['nuclei_side']:,} px image, the tiled path recovers "
            f"{100 * checks['recovered_tiled']:.1f} % (IoU >= 0.5), a whole-image resize (thumbnail) "
            f"{100 * checks['recovered_thumbnail']:.1f} %: the best each path can resolve; real "
            "weights' accuracy was not measured.",
            "",
        ]
    )


def strip_height(rows: int, scale: float) -> int:
    """The height of ``rows`` rows of tiles at ``scale``, in image pixels."""
    tile, overlap = round(TILE / scale), round(OVERLAP / scale)
    return tile + (rows - 1) * (tile - overlap)


def run_strips(args: argparse.Namespace) -> list[dict]:
    """Each strip in its own process: widths at ``--rows`` rows of tiles, then more rows at the
    first width, for every scale and class count."""
    runs = []
    for scale in args.scales:
        for classes in args.classes:
            shapes = [(strip_height(args.rows, scale), w) for w in args.widths]
            shapes += [(strip_height(r, scale), args.widths[0]) for r in args.more_rows]
            for height, width in shapes:
                with tempfile.TemporaryDirectory(prefix="sansa-strip-") as folder:
                    spec = json.dumps([height, width, scale, classes, args.image_size, folder])
                    command = [sys.executable, __file__, "--one-strip", spec]
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode != 0:
                        raise SystemExit(done.stderr)
                    runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(json.dumps(runs[-1]), flush=True)
    return runs


STRIPS_HEADING = "## Large images: memory against the image's size"


def strips_section(runs: list[dict], before: list[dict], command: str, machine: str, checks: dict) -> str:
    """The memory table: RSS growth by shape, scale and classes, before and after issue 23."""

    def key(r: dict) -> tuple:
        return r["height"], r["width"], r["scale"], r["classes"], r["image_size"]

    old = {key(r): r["rss_growth_gib"] for r in before}
    rows = []
    for r in runs:
        was = f"{old[key(r)]:.2f}" if key(r) in old else "-"
        rows.append(
            f"| {r['height']:,} x {r['width']:,} | {r['scale']:g} | {r['classes']} | {r['image_size']} | "
            f"{r['tiles']} | {r['seconds']:.0f} | {was} | {r['rss_growth_gib']:.2f} | {r['estimate_gib']:.2f} |"
        )
    return "\n".join(
        [
            STRIPS_HEADING,
            "",
            f"Measured by `{command}` on {machine}: lazy uint16 dask strips (made chunk by chunk as "
            f"tiles read them; below scale 1 as a two-level pyramid with a level at that scale), labels "
            f"written into a zarr array on disk; tiles of {TILE} working px with a {OVERLAP} px overlap, "
            "SAM2-tiny (random weights) at the input size given, "
            "the feature cache off (`cache_bytes=0`, so that tiles' features do not count). RSS "
            "growth: peak resident memory during the run minus before it (model loaded and warm), "
            "each run in its own process. *Before*: the code before issue 23 (a band of blended "
            "logits one tile high in image pixels and as wide as the image); *estimate*: "
            "`Sansa.estimate(...).run_bytes`.",
            "",
            "| strip (px) | scale | classes | input | tiles | seconds | before (GiB) | RSS growth (GiB) | estimate (GiB) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Seams and small objects (the checks of `python benchmarks/large_images.py`, oracle heads): "
            f"a disc centred where four tiles meet comes out in {checks['seam_disc_pieces']} piece(s), "
            f"IoU {checks['seam_disc_iou']:.3f}; the tiled path recovers "
            f"{100 * checks['recovered_tiled']:.1f} % of {checks['nuclei']:,} nuclei 8-15 px across, "
            f"a whole-image resize {100 * checks['recovered_thumbnail']:.1f} %.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192, 16384, 20000])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--strips", action="store_true", help="memory against width and height instead")
    parser.add_argument("--widths", type=int, nargs="+", default=[8192, 16384, 32768, 65536])
    parser.add_argument("--rows", type=int, default=1, help="rows of tiles of the strips")
    parser.add_argument("--more-rows", type=int, nargs="*", default=[3], help="at the first width")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.25])
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--before", type=Path, help="a --json-out of the code before, for the table")
    parser.add_argument("--json-out", type=Path, help="where the strips' figures go")
    parser.add_argument("--checks", type=Path, help="seam and small-object checks of an earlier run")
    parser.add_argument(
        "--only-checks", type=Path, help="run the seam and small-object checks into this file"
    )
    parser.add_argument("--runs", type=Path, help="the strips' figures of earlier runs, for the table only")
    parser.add_argument("--estimates", type=Path, help="recompute the estimates of a --json-out file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-strip", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.image_size, args.folder)))
        return
    if args.one_strip:
        height, width, scale, classes, image_size, folder = json.loads(args.one_strip)
        print(json.dumps(one_strip(height, width, scale, classes, image_size, Path(folder))))
        return
    if args.only_checks:
        args.only_checks.write_text(json.dumps(resolution_checks(1024)))
        return
    if args.estimates:  # the estimates of earlier runs again, with this code (no segmenting)
        runs = json.loads(args.estimates.read_text())
        for r in runs:
            spec = (
                r["height"],
                r["width"],
                r["scale"],
                r["classes"],
                r["image_size"],
                Path(tempfile.gettempdir()),
            )
            r.update(one_strip(*spec, estimate_only=True))
            print(json.dumps(r), flush=True)
        args.estimates.write_text(json.dumps(runs, indent=1))
        return
    if args.strips:
        runs = json.loads(args.runs.read_text()) if args.runs else run_strips(args)
        out = args.json_out or ROOT / "benchmarks" / "results" / "large_strips.json"
        out.write_text(json.dumps(runs, indent=1))
        if args.before is None:
            return
        before = json.loads(args.before.read_text())
        checks = json.loads(args.checks.read_text()) if args.checks else resolution_checks(1024)
        print(json.dumps(checks))
        command = " ".join(["python benchmarks/large_images.py", *sys.argv[1:]])
        machine = f"{cpu_name()}, {os.cpu_count()} cores"
        write_section(
            args.out, STRIPS_HEADING, strips_section(runs, before, command, machine, checks), before=None
        )
        return
    sizes = []
    for side in args.sizes:
        with tempfile.TemporaryDirectory(prefix="sansa-large-") as folder:
            command = [sys.executable, __file__, "--one", str(side), "--image-size", str(args.image_size)]
            done = subprocess.run([*command, "--folder", folder], capture_output=True, text=True, check=True)
            sizes.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(sizes[-1], flush=True)
    results = {
        "machine": f"{cpu_name()}, {sizes[0]['threads']} threads",
        "image_size": args.image_size,
        "sizes": sizes,
        "checks": resolution_checks(1024),
    }
    print(json.dumps(results["checks"]))
    (ROOT / "benchmarks" / "results" / "large_images.json").write_text(json.dumps(results, indent=1))
    command = (
        "python benchmarks/large_images.py"
        + (f" --sizes {' '.join(map(str, args.sizes))}" if args.sizes != parser.get_default("sizes") else "")
        + (f" --image-size {args.image_size}" if args.image_size != 256 else "")
    )
    write_section(args.out, HEADING, section(results, command), before=None)


if __name__ == "__main__":
    main()
