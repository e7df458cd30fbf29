"""Imagery for an area and a time: the one path every product takes (coverages, maps,
processes, later the WMS).

search (cloud over the area from the source's mask) → lazy cube on the requested grid → cloud
mask → one date or a temporal composite → clip to the area.  The result is a 2-D
``xarray.Dataset`` (one variable per band, float32 reflectance or product values, NaN where
masked) with the dates and scenes it was made from in its attributes (``cloud_masked`` says
whether a cloud mask was applied, ``warnings`` what the user should know).  Nothing is read
until the caller computes it.

The grid is the requested CRS and resolution, edges on multiples of the resolution (the
Sentinel-2 tile grid), or with ``grid="native"`` the data's own CRS, resolution and pixel
edges (no resampling): right for products that are not on the Sentinel-2 grid.
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
from sentinelle.catalog.gdal import asset_header
from sentinelle.catalog.presets import CLASS_BANDS
from sentinelle.catalog.scenes import Scene
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
        known = [m.cloud_fraction for m in everything if m.cloud_fraction is not None]
        if known:
            best = min(known) * 100
            raise NoData(
                f"no scene has at most {max_cloud:g} % cloud over the area {_describe(interval)} "
                f"({len(everything)} scene(s) found, the clearest {best:.0f} % cloudy); "
                "widen the datetime interval or raise max_cloud"
            )
        if interval is not None and catalog.find(area, interval, limit=1):
            nearest = _nearest(catalog, area, interval)
            raise NoData(f"the {scene_word(catalog)}(s) {_describe(interval)} have no data "
                         f"over the area (outside their swath, or no data){nearest}")
        raise NoData(f"no {scene_word(catalog)} covers the area {_describe(interval)}; "
                     "check the area and the datetime")
    return matches


def _nearest(catalog: Catalog, area: Area, interval: Interval) -> str:
    """"; nearest date(s) with data: …" around ``interval`` (footprints only)."""
    days = sorted({s.date for s in catalog.find(area)})
    before = [d for d in days if interval.start and d < interval.start.date()][-1:]
    after = [d for d in days if interval.end and d > interval.end.date()][:1]
    nearest = " and ".join(d.isoformat() for d in before + after)
    return f"; nearest date(s): {nearest}" if nearest else ""


def scene_word(catalog: Catalog) -> str:
    """How messages name a scene of ``catalog``: a Sentinel-2 scene, or an image of a
    product."""
    return "Sentinel-2 scene" if catalog.preset.kind == "optical" else "image of the product"


def latest_clear_match(catalog: Catalog, area: Area, *, max_cloud: float,
                       limits: Limits | None = None) -> Match:
    """The most recent scene with at most ``max_cloud`` percent cloud over ``area`` (the
    default date of a product asked for "now")."""
    return find_scenes(catalog, area, None, max_cloud=max_cloud, limits=limits)[-1]


def native_epsg(matches: Sequence[Match]) -> int:
    """The UTM zone most of the scenes are in (the default output CRS)."""
    return Counter(m.scene.epsg for m in matches).most_common(1)[0][0]


GRIDS = ("default", "native")


def native_grid(scenes: Sequence[Scene], bands: Sequence[str], area: Area) -> Grid:
    """The data's own grid over ``area``: the CRS, pixel size and pixel edges of the finest of
    ``bands`` in the scenes of the most common CRS (read from the catalog, else from the
    file's header), so that nothing is resampled."""
    epsg = Counter(s.epsg for s in scenes).most_common(1)[0][0]
    candidates = []
    for scene in scenes:
        if scene.epsg != epsg:
            continue
        for band in bands:
            asset = scene.assets.get(band)
            if asset is None or band in CLASS_BANDS:
                continue
            transform, code = asset.transform, asset.epsg
            if transform is None or code is None:
                header = asset_header(asset.href)
                transform, code = header.transform, header.epsg
            candidates.append((abs(transform[0]), code, transform))
        if candidates:
            break
    if not candidates:
        raise InvalidInput("grid=native: the scenes' grids are unknown")
    resolution, code, transform = min(candidates, key=lambda c: c[0])
    if abs(abs(transform[4]) - resolution) > 1e-9 * resolution or transform[1] or transform[3]:
        raise InvalidInput("grid=native needs square, north-up pixels; use the default grid")
    return Grid.from_area(area, parse_crs(code), resolution, anchor=(transform[2], transform[5]))


def read_cube(catalog: Catalog, area: Area, interval: Interval | None, bands: Iterable[str],
              *, crs=None, resolution: float = 10.0, max_cloud: float | None = None,
              mask: bool = True, keep_mask: bool = False, resampling: str = "nearest",
              limits: Limits | None = None,
              anchor: tuple[float, float] = (0.0, 0.0), grid: str = "default") -> xr.Dataset:
    """The lazy ``(time, y, x)`` cube of ``bands`` over ``area``'s grid, one entry per
    matching scene, cloud-masked with the catalog's mask when ``mask``; the dates, scenes and
    cloud fractions are in its attributes.  Time series (zonal statistics per date) start
    from here.  ``grid="native"`` reads on the data's own grid (``crs`` and ``resolution``
    are then ignored)."""
    limits = limits or Limits()
    if grid not in GRIDS:
        raise InvalidInput(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    cloud = catalog.mask
    mask_band = cloud.band if cloud.masks else None
    bands = [b for b in dict.fromkeys(bands) if b not in CLASS_BANDS]
    matches = find_scenes(catalog, area, interval, max_cloud=max_cloud, limits=limits)
    warnings = []
    if max_cloud is not None and not cloud.masks:
        warnings.append(f"the source has no cloud mask: cloud cover is unknown and max_cloud "
                        f"({max_cloud:g} %) did not filter the dates")
    if grid == "native":
        target = native_grid([m.scene for m in matches], bands, area)
        out_crs, resolution = target.crs, target.resolution
    else:
        out_crs = parse_crs(crs) if crs is not None else parse_crs(native_epsg(matches))
        target = Grid.from_area(area, out_crs, resolution, anchor=anchor)
    scenes = [m.scene for m in matches]
    extra = [mask_band] if mask_band and (mask or keep_mask) else []
    cube = load_cube(scenes, bands + extra, target, resampling=resampling, limits=limits,
                     skip_unreadable=True)
    skipped = cube.attrs.get("skipped", {})  # scenes with a missing/corrupt file, left out
    matches = [m for m in matches if m.scene.id not in skipped]
    scenes = [m.scene for m in matches]
    if mask:
        cube = mask_clouds(cube, cloud)
    cube.attrs.update(
        dates=sorted({s.date.isoformat() for s in scenes}),
        scenes=[s.id for s in scenes],
        cloud_fractions={m.scene.id: None if m.cloud_fraction is None
                         else round(m.cloud_fraction, 4) for m in matches},
        resolution=resolution,
        skipped=skipped,
        cloud_masked=bool(mask and cloud.masks),
        warnings=warnings,
    )
    return cube.rio.write_crs(out_crs).rio.write_transform(target.transform)


def read_imagery(catalog: Catalog, area: Area, interval: Interval | None, bands: Iterable[str],
                 *, crs=None, resolution: float = 10.0, method: str = "median",
                 max_cloud: float | None = None, mask: bool = True, clip: bool = True,
                 resampling: str = "nearest", limits: Limits | None = None,
                 anchor: tuple[float, float] = (0.0, 0.0), grid: str = "default") -> xr.Dataset:
    """Values of ``bands`` over ``area``: one date when the interval holds one, else a
    composite (``method``).  ``mask`` removes what the source's cloud mask says is not
    ground; ``clip`` blanks pixels whose centre lies outside the area.  ``anchor`` places the
    grid's edges (see :meth:`Grid.from_area`); ``grid="native"`` uses the data's own grid.

    The mask band among ``bands`` (``scl``…) is returned (codes, NaN outside the area) only
    for one unmasked date; with ``mask`` it is used for masking and left out.
    """
    bands = list(dict.fromkeys(bands))
    mask_band = catalog.mask.band
    keep_mask = bool(mask_band) and mask_band in bands and not mask
    unknown = [b for b in bands if b in CLASS_BANDS and b != mask_band]
    if unknown:
        raise InvalidInput(f"band(s) {', '.join(unknown)} are not this source's cloud mask "
                           f"({catalog.mask.describe()})")
    cube = read_cube(catalog, area, interval, bands, crs=crs, resolution=resolution,
                     max_cloud=max_cloud, mask=mask, keep_mask=keep_mask,
                     resampling=resampling, limits=limits, anchor=anchor, grid=grid)
    scenes = cube.attrs["scenes"]
    if keep_mask and len(scenes) > 1:
        raise InvalidInput(
            f"the {mask_band} band (cloud mask) exists per date but {len(scenes)} scenes "
            f"match {_describe(interval)}; ask for one date"
        )
    if len(scenes) == 1:  # nothing to reduce (and mask codes must stay as they are)
        result = cube.isel(time=0, drop=True)
        result = result.drop_vars([c for c in ("id", "time") if c in result.coords])
    else:
        result = composite(cube, method)
    grid_crs, transform = cube.rio.crs, cube.rio.transform()
    if clip:
        pixels = Grid(grid_crs, transform, (cube.sizes["y"], cube.sizes["x"]))
        inside = xr.DataArray(area_mask(area, pixels), dims=("y", "x"))
        result = result.where(inside)
    result.attrs.update({key: cube.attrs[key] for key in
                         ("dates", "scenes", "cloud_fractions", "resolution", "skipped",
                          "cloud_masked", "warnings")})
    result.attrs["composite"] = method if len(scenes) > 1 else "none"
    return result.rio.write_crs(grid_crs).rio.write_transform(transform)


def valid_fraction(data: xr.DataArray) -> float:
    """Share of finite pixels (computed)."""
    values = np.asarray(data.values)
    return float(np.isfinite(values).mean()) if values.size else 0.0
