"""Overview-aware reads: a coarse request reads a COG's overview, not its full resolution.

stackstac reads through a warped VRT, and GDAL's warper does not pick source overviews by
itself, so a 160 m map of a 10 m band would decode every full-resolution block it touches.
When the output pixel is at least twice the file's, the asset is opened as
``vrt://<file>?ovr=<level>`` — the finest overview no finer than the output pixel — and the
warper resamples from there.  Only for averaging resamplings: nearest neighbour keeps reading
full-resolution pixels so that values stay exact samples.
"""

from __future__ import annotations

import functools
import math

import rasterio
from rasterio.errors import RasterioIOError

from sentinelle.catalog.area import Grid, _transformer, parse_crs


@functools.lru_cache(maxsize=4096)
def overview_resolutions(href: str) -> tuple[float, ...]:
    """Pixel size of the file, then of each overview, in the file's CRS units (cached)."""
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):
        with rasterio.open(href) as ds:
            size = abs(ds.transform.a)
            return (size, *(size * factor for factor in ds.overviews(1)))


def ground_resolution(grid: Grid, epsg: int) -> float:
    """The grid's pixel size expressed in another CRS, measured at the grid's centre."""
    if grid.epsg == epsg:
        return grid.resolution
    minx, miny, maxx, maxy = grid.bounds
    x, y = (minx + maxx) / 2, (miny + maxy) / 2
    to_file = _transformer(grid.crs, parse_crs(epsg))
    (x0, x1), (y0, y1) = to_file.transform([x, x + grid.resolution], [y, y])
    return math.hypot(x1 - x0, y1 - y0)


def overview_href(href: str, target: float) -> str:
    """``href``, or a ``vrt://…?ovr=k`` connection to its finest overview no finer than
    ``target`` (file CRS units).  Files that cannot be inspected are returned unchanged (the
    reader will report them)."""
    if "?" in href or href.startswith("vrt://"):
        return href
    path = f"/vsicurl/{href}" if href.startswith(("http://", "https://")) else href
    try:
        sizes = overview_resolutions(path)
    except (RasterioIOError, OSError):
        return href
    level = None
    for index, size in enumerate(sizes[1:]):
        if size <= target * (1 + 1e-6):
            level = index
    return href if level is None else f"vrt://{path}?ovr={level}"
