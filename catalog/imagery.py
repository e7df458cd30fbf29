"""Imagery for an area and a time: the one path every product takes (coverages, maps,
processes, later the WMS).

search (cloud over the area from SCL) → lazy cube on the requested grid → SCL mask → one
date or a temporal composite → clip to the area.  The result is a 2-D ``xarray.Dataset``
(one variable per band, float32 reflectance, NaN where masked) with the dates and scenes it
was made from in its attributes.  Nothing is read until the caller computes it.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import xarray as xr

from sentinelle.catalog.area import Area, Grid, parse_crs
from sentinelle.catalog.composite import composite, mask_clouds
from sentinelle.catalog.cube import load_cube
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.scl import DEFAULT_MASK_CLASSES
from sentinelle.catalog.search import Match, area_mask, search
from sentinelle.catalog.source import Catalog
from sentinelle.errors import InvalidInput, NoData
from sentinelle.settings import Limits


def _describe(interval: Interval | None) -> str:
    if interval is None or (interval.start is None and interval.end is None):
        return "in the catalog"
    start = interval.start.date().isoformat() if interval.start else ".."
    end = interval.end.date().isoformat() if interval.end else ".."
    return f"between {start} and {end}"


def find_scenes(catalog: Catalog, area: Area, interval: Interval | None, *,
                max_cloud: float | None = None, limits: Limits | None = None) -> list[Match]:
    """Matching scenes, or :class:`NoData` with a message saying what to change."""
    matches = search(catalog, area, interval, max_cloud=max_cloud, limits=limits)
    if not matches:
        everything = search(catalog, area, interval, limits=limits) if max_cloud is not None \
            else []
        if everything:
            best = min(m.cloud_fraction for m in everything) * 100
            raise NoData(
                f"no scene has at most {max_cloud:g} % cloud over the area {_describe(interval)} "
                f"({len(everything)} scene(s) found, the clearest {best:.0f} % cloudy); "
                "widen the datetime interval or raise max_cloud"
            )
        raise NoData(f"no Sentinel-2 scene covers the area {_describe(interval)}; "
                     "check the area and the datetime")
    return matches


def latest_clear_match(catalog: Catalog, area: Area, *, max_cloud: float,
                       limits: Limits | None = None) -> Match:
    """The most recent scene with at most ``max_cloud`` percent cloud over ``area`` (the
    default date of a product asked for "now")."""
    return find_scenes(catalog, area, None, max_cloud=max_cloud, limits=limits)[-1]


def native_epsg(matches: Sequence[Match]) -> int:
    """The UTM zone most of the scenes are in (the default output CRS)."""
    return Counter(m.scene.epsg for m in matches).most_common(1)[0][0]


def read_cube(catalog: Catalog, area: Area, interval: Interval | None, bands: Iterable[str],
              *, crs=None, resolution: float = 10.0, max_cloud: float | None = None,
              mask: bool = True, mask_classes: Iterable[int] = DEFAULT_MASK_CLASSES,
              keep_scl: bool = False, resampling: str = "nearest",
              limits: Limits | None = None,
              anchor: tuple[float, float] = (0.0, 0.0)) -> xr.Dataset:
    """The lazy ``(time, y, x)`` cube of ``bands`` over ``area``'s grid, one entry per
    matching scene, masked with SCL when ``mask``; the dates, scenes and cloud fractions are
    in its attributes.  Time series (zonal statistics per date) start from here."""
    limits = limits or Limits()
    bands = [b for b in dict.fromkeys(bands) if b != "scl"]
    matches = find_scenes(catalog, area, interval, max_cloud=max_cloud, limits=limits)
    out_crs = parse_crs(crs) if crs is not None else parse_crs(native_epsg(matches))
    grid = Grid.from_area(area, out_crs, resolution, anchor=anchor)
    scenes = [m.scene for m in matches]
    cube = load_cube(scenes, bands + (["scl"] if mask or keep_scl else []), grid,
                     resampling=resampling, limits=limits, skip_unreadable=True)
    skipped = cube.attrs.get("skipped", {})  # scenes with a missing/corrupt file, left out
    matches = [m for m in matches if m.scene.id not in skipped]
    scenes = [m.scene for m in matches]
    if mask:
        cube = mask_clouds(cube, mask_classes)
    cube.attrs.update(
        dates=sorted({s.date.isoformat() for s in scenes}),
        scenes=[s.id for s in scenes],
        cloud_fractions={m.scene.id: round(m.cloud_fraction, 4) for m in matches},
        resolution=resolution,
        skipped=skipped,
    )
    return cube.rio.write_crs(out_crs).rio.write_transform(grid.transform)


def read_imagery(catalog: Catalog, area: Area, interval: Interval | None, bands: Iterable[str],
                 *, crs=None, resolution: float = 10.0, method: str = "median",
                 max_cloud: float | None = None, mask: bool = True,
                 mask_classes: Iterable[int] = DEFAULT_MASK_CLASSES, clip: bool = True,
                 resampling: str = "nearest", limits: Limits | None = None,
                 anchor: tuple[float, float] = (0.0, 0.0)) -> xr.Dataset:
    """Reflectance of ``bands`` over ``area``: one date when the interval holds one, else a
    composite (``method``).  ``mask`` removes what SCL says is not ground; ``clip`` blanks
    pixels whose centre lies outside the area.  ``anchor`` places the grid's edges (see
    :meth:`Grid.from_area`).

    ``scl`` among ``bands`` is returned (class codes, NaN outside the area) only for one
    unmasked date; with ``mask`` it is used for masking and left out.
    """
    bands = list(dict.fromkeys(bands))
    keep_scl = "scl" in bands and not mask
    cube = read_cube(catalog, area, interval, bands, crs=crs, resolution=resolution,
                     max_cloud=max_cloud, mask=mask, mask_classes=mask_classes,
                     keep_scl=keep_scl, resampling=resampling, limits=limits, anchor=anchor)
    scenes = cube.attrs["scenes"]
    if keep_scl and len(scenes) > 1:
        raise InvalidInput(
            f"the scl band (scene classification) exists per date but {len(scenes)} scenes "
            f"match {_describe(interval)}; ask for one date"
        )
    if len(scenes) == 1:  # nothing to reduce (and SCL codes must stay as they are)
        result = cube.isel(time=0, drop=True)
        result = result.drop_vars([c for c in ("id", "time") if c in result.coords])
    else:
        result = composite(cube, method)
    grid_crs, transform = cube.rio.crs, cube.rio.transform()
    if clip:
        grid = Grid(grid_crs, transform, (cube.sizes["y"], cube.sizes["x"]))
        inside = xr.DataArray(area_mask(area, grid), dims=("y", "x"))
        result = result.where(inside)
    result.attrs.update({key: cube.attrs[key] for key in
                         ("dates", "scenes", "cloud_fractions", "resolution", "skipped")})
    result.attrs["composite"] = method if len(scenes) > 1 else "none"
    return result.rio.write_crs(grid_crs).rio.write_transform(transform)


def valid_fraction(data: xr.DataArray) -> float:
    """Share of finite pixels (computed)."""
    values = np.asarray(data.values)
    return float(np.isfinite(values).mean()) if values.size else 0.0
