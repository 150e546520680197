"""``<name>_objects.geojson``: objects or class regions as QuPath imports them.

A ``FeatureCollection`` with one ``Feature`` per object (``objectType`` "detection") or, from
class labels, per connected region of a class (``objectType`` "annotation"), in pixel
coordinates (x = column, y = row) along the pixel edges, with ``classification`` {name, color}.
QuPath: *File › Import objects from file*. Features are written one at a time as the labels are
read tile by tile (:mod:`.polygons`), into a temporary file renamed into place when complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from napari_sansa.files.class_table import class_color, class_name
from napari_sansa.files.images import atomic_write
from napari_sansa.files.polygons import Region


def polygons_json(geometry) -> list[list[list[list[int]]]]:
    """A (Multi)Polygon's polygons as GeoJSON rings of whole-pixel ``[x, y]`` corners, outer
    rings counter-clockwise on screen (y down) and holes kept."""
    import shapely
    from shapely.geometry.polygon import orient

    polygons = []
    for part in shapely.get_parts(geometry):
        part = orient(part, -1.0)  # clockwise with y up is counter-clockwise as drawn (y down)
        rings = [part.exterior, *part.interiors]
        polygons.append([np.rint(ring.coords).astype(np.int64).tolist() for ring in rings])
    return polygons


def feature(region: Region, class_names: dict[int, str], instances: bool) -> dict:
    """One region as a QuPath GeoJSON ``Feature``."""
    polygons = polygons_json(region.geometry)
    geometry: dict = (
        {"type": "Polygon", "coordinates": polygons[0]}
        if len(polygons) == 1
        else {"type": "MultiPolygon", "coordinates": polygons}
    )
    if region.plane is not None:  # QuPath's image plane of a stack's object
        geometry["plane"] = {"c": -1, "z": int(region.plane), "t": 0}
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "objectType": "detection" if instances else "annotation",
            "classification": {
                "name": class_name(class_names, region.class_id),
                "color": class_color(region.class_id),
            },
            "label": int(region.label),
            "class_id": int(region.class_id),
        },
    }


def write_geojson(
    path: str | os.PathLike, regions: Iterable[Region], class_names: dict[int, str], *, instances: bool
) -> Path:
    """Write the regions as a FeatureCollection, streamed, atomically; returns the path."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write('{"type": "FeatureCollection", "features": [')
            for i, region in enumerate(regions):
                out.write(",\n" if i else "\n")
                out.write(json.dumps(feature(region, class_names, instances)))
            out.write("\n]}\n")

    return atomic_write(path, write)
