"""Search that answers the user's real question: which dates show *this area* clearly?

A scene's ``eo:cloud_cover`` describes 110 × 110 km; a commune can be clear under a 70 %
cloudy tile or hidden under a 5 % one.  So the cloud fraction is measured over the area from
the SCL band (20 m, or coarser through overviews for large areas, within a pixel budget).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from rasterio.features import geometry_mask

from sentinelle.catalog.area import Area, Grid
from sentinelle.catalog.cube import load_cube
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.scenes import Scene
from sentinelle.catalog.scl import CLOUD_CLASSES, class_fraction
from sentinelle.catalog.source import Catalog
from sentinelle.errors import InvalidInput, TooLarge
from sentinelle.settings import Limits

SCL_RESOLUTION = 20.0
#: SCL pixels read per scene at most to measure its cloud fraction over an area
CLOUD_PIXEL_BUDGET = 1_000_000


@dataclass(frozen=True)
class Match:
    """A scene found for an area, with the share of the area hidden by clouds (0–1)."""

    scene: Scene
    cloud_fraction: float


def area_mask(area: Area, grid: Grid) -> np.ndarray:
    """Boolean array on ``grid``: True for pixels whose centre lies in the area — or, for an
    area smaller than a pixel (no centre inside), the pixels it touches."""
    geometry = area.to_crs(grid.crs).geometry
    inside = geometry_mask([geometry], out_shape=grid.shape, transform=grid.transform,
                           invert=True)
    if not inside.any():
        inside = geometry_mask([geometry], out_shape=grid.shape, transform=grid.transform,
                               invert=True, all_touched=True)
    return inside


def scl_grid(area: Area, epsg: int) -> Grid:
    """The SCL grid for an area: 20 m, or a coarser multiple of 20 m within the budget."""
    grid = Grid.from_area(area, epsg, SCL_RESOLUTION)
    factor = math.ceil(math.sqrt(grid.npixels / CLOUD_PIXEL_BUDGET))
    return grid if factor <= 1 else Grid.from_area(area, epsg, SCL_RESOLUTION * factor)


def cloud_fractions(scenes: Sequence[Scene], area: Area, *,
                    classes: Iterable[int] = CLOUD_CLASSES,
                    limits: Limits | None = None,
                    skip_unreadable: bool = False) -> dict[str, float | None]:
    """Scene id → share (0–1) of the area's observed pixels in ``classes``.

    ``None`` when the scene has no data over the area.  Scenes are grouped by UTM zone so each
    group is read on its native grid.  With ``skip_unreadable``, scenes whose SCL file is
    missing or corrupt are left out of the answer (see :func:`load_cube`).
    """
    limits = limits or Limits()
    classes = list(classes)
    by_epsg: dict[int, list[Scene]] = defaultdict(list)
    for scene in scenes:
        if "scl" not in scene.assets:
            raise InvalidInput(f"scene {scene.id} has no SCL band: cannot measure its clouds")
        by_epsg[scene.epsg or scene.assets["scl"].epsg].append(scene)
    out: dict[str, float | None] = {}
    for epsg, group in by_epsg.items():
        grid = scl_grid(area, epsg)
        inside = area_mask(area, grid)
        budget = Limits(max_pixels=max(limits.max_pixels, grid.npixels * len(group)),
                        max_dates=max(limits.max_dates, len(group)),
                        chunk_size=limits.chunk_size)
        scl = load_cube(group, ["scl"], grid, limits=budget,
                        skip_unreadable=skip_unreadable)["scl"]
        values = scl.values  # small: one uint8 plane per scene within CLOUD_PIXEL_BUDGET
        for index, scene_id in enumerate(scl["id"].values):
            out[str(scene_id)] = class_fraction(values[index], inside, classes)
    return out


def search(catalog: Catalog, area: Area, interval: Interval | None = None, *,
           max_cloud: float | None = None, limits: Limits | None = None) -> list[Match]:
    """Scenes over ``area`` in ``interval`` with at most ``max_cloud`` percent of the area
    under cloud (measured from SCL), sorted by date.  Scenes with no data over the area are
    left out.
    """
    limits = limits or Limits()
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise InvalidInput(f"max_cloud is a percentage between 0 and 100, got {max_cloud}")
    scenes = catalog.find(area, interval, limit=limits.max_search_items + 1)
    if len(scenes) > limits.max_search_items:
        raise TooLarge(
            f"more than {limits.max_search_items} scenes match; narrow the area or the dates"
        )
    fractions = cloud_fractions(scenes, area, limits=limits, skip_unreadable=True) \
        if scenes else {}
    matches = []
    for scene in scenes:
        fraction = fractions.get(scene.id)  # absent: its SCL file is unreadable (logged)
        if fraction is None:
            continue
        if max_cloud is not None and fraction * 100 > max_cloud:
            continue
        matches.append(Match(scene, fraction))
    return matches
