"""Synthetic objects with a known answer, for benchmarks/instances.py: touching ellipses whose
neck is known, and single irregular objects that must stay one.

The neck between two touching ellipses is the chord between the two points where their
outlines cross, over the smaller ellipse's width (its minor axis): 0.6 is a waist 60% as wide
as the smaller object. Truth labels give each pixel to the ellipse it lies deepest inside (as
pressed cells share a straight-ish wall). Each group or object lies alone in a TILE x TILE tile.
"""

from __future__ import annotations

import numpy as np

TILE = 112
KINDS = ("pair", "chain", "triangle")


class Ellipse:
    def __init__(self, a: float, b: float, angle: float, centre=(0.0, 0.0)) -> None:
        self.a, self.b, self.angle, self.centre = a, b, angle, np.asarray(centre, float)

    @property
    def width(self) -> float:
        return 2 * min(self.a, self.b)

    def depth(self, rows, cols) -> np.ndarray:
        """1 on the outline, < 1 inside (the scaled radius)."""
        dr, dc = rows - self.centre[0], cols - self.centre[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        u, v = cos * dc + sin * dr, -sin * dc + cos * dr
        return np.hypot(u / self.a, v / self.b)

    def outline(self, n: int = 720) -> tuple[np.ndarray, np.ndarray]:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        u, v = self.a * np.cos(t), self.b * np.sin(t)
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        return sin * u + cos * v + self.centre[0], cos * u - sin * v + self.centre[1]


def chord(e: Ellipse, f: Ellipse) -> float | None:
    """The distance between the two points where the outlines cross; 0 if apart, None if they
    cross more than twice or one holds the other."""
    rows, cols = e.outline()
    inside = f.depth(rows, cols) <= 1
    changes = np.flatnonzero(inside != np.roll(inside, 1))
    if len(changes) == 0:
        return None if inside.all() else 0.0
    if len(changes) != 2:
        return None
    return float(np.hypot(*np.subtract(*zip(rows[changes], cols[changes]))))


def press(fixed: Ellipse, moving: Ellipse, direction: np.ndarray, neck: float, start=None) -> bool:
    """Slide ``moving`` from ``start`` (default: ``fixed``'s centre) along ``direction`` to where
    its chord with ``fixed`` is ``neck`` of the smaller width (bisection); False if none is."""
    start = fixed.centre if start is None else start
    target = neck * min(fixed.width, moving.width)
    near, far = 0.0, fixed.a + fixed.b + moving.a + moving.b
    for _ in range(40):
        middle = (near + far) / 2
        moving.centre = start + middle * direction
        k = chord(fixed, moving)
        if k is None or k > target:
            near = middle
        else:
            far = middle
    moving.centre = start + far * direction
    k = chord(fixed, moving)
    return k is not None and abs(k - target) < 0.5


def random_ellipse(rng) -> Ellipse:
    b = rng.uniform(5, 16)  # 10-32 px wide
    return Ellipse(b * rng.uniform(1.0, 1.8), b, rng.uniform(0, np.pi))


def group(rng, kind: str, neck: float) -> tuple[np.ndarray, float] | None:
    """Truth labels of a touching pair, chain of three or triangle of three ellipses whose widest
    neck is ``neck``, and that neck; None where the draw does not fit (draw again)."""
    n = 2 if kind == "pair" else 3
    shapes = [random_ellipse(rng) for _ in range(n)]
    theta = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.sin(theta), np.cos(theta)])
    if not press(shapes[0], shapes[1], direction, neck if n == 2 else rng.uniform(0.3, neck)):
        return None
    if kind == "chain":
        phi = theta + rng.uniform(-0.6, 0.6)
        if not press(shapes[1], shapes[2], np.array([np.sin(phi), np.cos(phi)]), neck):
            return None
    elif kind == "triangle":  # the third slides in across the pair's axis until one neck is `neck`
        middle = (shapes[0].centre + shapes[1].centre) / 2
        across = np.array([-direction[1], direction[0]]) * rng.choice([-1, 1])
        first = [press(shapes[i], shapes[2], across, neck, start=middle) for i in (0, 1)]
        if not any(first):
            return None
        lower = int(np.argmax([np.linalg.norm(shapes[2].centre - middle) if ok else -1 for ok in first]))
        press(shapes[lower], shapes[2], across, neck, start=middle)
    rows, cols = np.mgrid[:TILE, :TILE]
    shift = TILE / 2 - np.mean([e.centre for e in shapes], axis=0)
    for e in shapes:
        e.centre = e.centre + shift
    depth = np.stack([e.depth(rows, cols) for e in shapes])
    truth = np.where(depth.min(0) <= 1, depth.argmin(0) + 1, 0).astype(np.int32)
    if truth[[0, -1]].any() or truth[:, [0, -1]].any():
        return None
    areas = np.bincount(truth.ravel(), minlength=n + 1)[1:]
    if any(area < 0.6 * np.pi * e.a * e.b for area, e in zip(areas, shapes)):
        return None  # mostly hidden under the others
    necks = []
    for i in range(n):
        for j in range(i + 1, n):
            k = chord(shapes[i], shapes[j])
            if k is None:
                return None
            if k > 0:
                necks.append(k / min(shapes[i].width, shapes[j].width))
    if len(necks) < n - 1 or (kind == "triangle" and len(necks) < 3) or max(necks) > neck + 0.02:
        return None
    return truth, max(necks)


def single(rng) -> np.ndarray | None:
    """One irregular object (labels 0/1): a wobbly outline, a bent rod or a long ellipse."""
    rows, cols = np.mgrid[:TILE, :TILE].astype(float) - TILE / 2
    kind = rng.integers(3)
    if kind == 0:
        angle = np.arctan2(rows, cols)
        edge = 1 + sum(
            rng.uniform(0, 0.12) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in range(2, 6)
        )
        mask = np.hypot(rows, cols) <= rng.uniform(8, 30) * edge
    elif kind == 1:
        radius, half, span = rng.uniform(15, 35), rng.uniform(4, 10), rng.uniform(0.6, 1.8)
        along = np.arctan2(cols, -(rows - radius))
        mask = (np.abs(np.hypot(rows - radius, cols) - radius) <= half) & (np.abs(along) <= span / 2)
        for end in (-span / 2, span / 2):
            mask |= np.hypot(rows - radius + radius * np.cos(end), cols - radius * np.sin(end)) <= half
    else:
        b = rng.uniform(5, 14)
        mask = Ellipse(b * rng.uniform(1.8, 3.2), b, rng.uniform(0, np.pi)).depth(rows, cols) <= 1
    if mask[[0, -1]].any() or mask[:, [0, -1]].any():
        return None
    return mask.astype(np.int32)


def scenes(seed: int = 0, groups: int = 100, singles: int = 200, max_neck: float = 0.7) -> dict:
    """``{kind: [(truth, neck), ...]}`` for each of KINDS (necks drawn from 0.3 to ``max_neck``)
    and ``{"single": [truth, ...]}``, the same for the same seed."""
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {}
    for kind in KINDS:
        out[kind] = []
        while len(out[kind]) < groups:
            drawn = group(rng, kind, rng.uniform(0.3, max_neck))
            if drawn is not None and drawn[1] <= max_neck:
                out[kind].append(drawn)
    out["single"] = []
    while len(out["single"]) < singles:
        drawn = single(rng)
        if drawn is not None:
            out["single"].append(drawn)
    return out


def mosaic(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles side by side in a square grid, their labels numbered on."""
    k = int(np.ceil(np.sqrt(len(tiles))))
    out = np.zeros((k * TILE, k * TILE), np.int32)
    offset = 0
    for i, tile in enumerate(tiles):
        r, c = divmod(i, k)
        out[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = np.where(tile > 0, tile + offset, 0)
        offset += int(tile.max())
    return out
