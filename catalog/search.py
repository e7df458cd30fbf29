"""Search that answers the user's real question: which dates show *this area* clearly?

A scene's ``eo:cloud_cover`` describes 110 × 110 km; a commune can be clear under a 70 %
cloudy tile or hidden under a 5 % one.  So the cloud fraction is measured over the area from
the source's cloud mask (SCL, a Theia bit field, a cloud probability: 20 m, or coarser through
overviews for large areas, within a pixel budget).  Masks that cannot tell "no data" from
"clear" (a bit field's 0), and sources without a mask, read one reflectance band too, to
find which scenes really have data over the area.  Without a mask the cloud fraction is
unknown (``None``): such scenes are kept whatever ``max_cloud`` says.
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
from sentinelle.catalog.masks import Mask, SclMask
from sentinelle.catalog.presets import CLASS_BANDS
from sentinelle.catalog.scenes import Scene
from sentinelle.catalog.scl import CLOUD_CLASSES
from sentinelle.catalog.source import Catalog
from sentinelle.errors import InvalidInput, TooLarge
from sentinelle.settings import Limits

SCL_RESOLUTION = 20.0
#: SCL pixels read per scene at most to measure its cloud fraction over an area
CLOUD_PIXEL_BUDGET = 1_000_000


#: bands read, in this order of preference, to find a scene's pixels with data
PROBE_BANDS = ("red", "nir", "green", "blue", "value", "nir08", "swir16")


@dataclass(frozen=True)
class Match:
    """A scene found for an area, with the share of the area hidden by clouds (0–1; None
    when the source has no cloud mask: unknown)."""

    scene: Scene
    cloud_fraction: float | None


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


def probe_band(scenes: Sequence[Scene]) -> str | None:
    """A reflectance (or value) band every scene has, to tell pixels with data."""
    for band in PROBE_BANDS:
        if all(band in scene.assets for scene in scenes):
            return band
    common = set.intersection(*(set(s.assets) for s in scenes)) - CLASS_BANDS if scenes \
        else set()
    return min(common) if common else None


def measure_clouds(scenes: Sequence[Scene], area: Area, mask: Mask, *,
                   limits: Limits | None = None,
                   skip_unreadable: bool = False) -> dict[str, tuple[bool, float | None]]:
    """Scene id → (has data over the area, share 0–1 of its observed pixels that the mask
    calls cloud; None when the source has no mask).

    Scenes are grouped by UTM zone so each group is read on its native grid.  With
    ``skip_unreadable``, scenes whose files are missing or corrupt are left out of the
    answer (see :func:`load_cube`).
    """
    limits = limits or Limits()
    bands = [mask.band] if mask.masks else []
    probe = None if mask.knows_nodata else probe_band(scenes)
    if probe is not None:
        bands.append(probe)
    if not bands:
        raise InvalidInput("the scenes have no band to measure data or clouds with")
    by_epsg: dict[int, list[Scene]] = defaultdict(list)
    for scene in scenes:
        missing = [b for b in bands if b not in scene.assets]
        if missing:
            raise InvalidInput(f"scene {scene.id} has no {' or '.join(missing)} band: cannot "
                               f"measure its clouds ({mask.describe()})")
        by_epsg[scene.epsg or scene.assets[bands[0]].epsg].append(scene)
    out: dict[str, tuple[bool, float | None]] = {}
    for epsg, group in by_epsg.items():
        grid = scl_grid(area, epsg)
        inside = area_mask(area, grid)
        budget = Limits(max_pixels=max(limits.max_pixels, grid.npixels * len(group) * len(bands)),
                        max_dates=max(limits.max_dates, len(group)),
                        chunk_size=limits.chunk_size)
        cube = load_cube(group, bands, grid, limits=budget, skip_unreadable=skip_unreadable)
        # small: one plane per scene and band within CLOUD_PIXEL_BUDGET
        mask_values = cube[mask.band].values if mask.masks else None
        probe_values = cube[probe].values if probe is not None else None
        for index, scene_id in enumerate(cube["id"].values):
            if probe_values is not None:
                observed = inside & np.isfinite(probe_values[index])
            else:
                observed = inside & mask.observed(mask_values[index])
            total = int(observed.sum())
            if total == 0:
                out[str(scene_id)] = (False, None)
            elif mask_values is None:
                out[str(scene_id)] = (True, None)
            else:
                hit = int((observed & mask.cloudy(mask_values[index])).sum())
                out[str(scene_id)] = (True, hit / total)
    return out


def cloud_fractions(scenes: Sequence[Scene], area: Area, *,
                    classes: Iterable[int] = CLOUD_CLASSES, mask: Mask | None = None,
                    limits: Limits | None = None,
                    skip_unreadable: bool = False) -> dict[str, float | None]:
    """Scene id → share (0–1) of the area's observed pixels under cloud, ``None`` when the
    scene has no data over the area (SCL with ``classes`` as cloud, unless ``mask`` says
    otherwise)."""
    mask = mask or SclMask(cloud_classes=tuple(int(c) for c in classes))
    measured = measure_clouds(scenes, area, mask, limits=limits,
                              skip_unreadable=skip_unreadable)
    return {scene_id: fraction if has_data else None
            for scene_id, (has_data, fraction) in measured.items()}


def search(catalog: Catalog, area: Area, interval: Interval | None = None, *,
           max_cloud: float | None = None, limits: Limits | None = None) -> list[Match]:
    """Scenes over ``area`` in ``interval`` with at most ``max_cloud`` percent of the area
    under cloud (measured with the catalog's cloud mask), sorted by date.  Scenes with no data
    over the area are left out; without a cloud mask the fraction is unknown (None) and
    ``max_cloud`` does not filter.
    """
    limits = limits or Limits()
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise InvalidInput(f"max_cloud is a percentage between 0 and 100, got {max_cloud}")
    scenes = catalog.find(area, interval, limit=limits.max_search_items + 1)
    if len(scenes) > limits.max_search_items:
        raise TooLarge(
            f"more than {limits.max_search_items} scenes match; narrow the area or the dates"
        )
    measured = measure_clouds(scenes, area, catalog.mask, limits=limits,
                              skip_unreadable=True) if scenes else {}
    matches = []
    for scene in scenes:
        if scene.id not in measured:  # its files are unreadable (logged)
            continue
        has_data, fraction = measured[scene.id]
        if not has_data:
            continue
        if max_cloud is not None and fraction is not None and fraction * 100 > max_cloud:
            continue
        matches.append(Match(scene, fraction))
    return matches
