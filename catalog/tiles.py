"""Map tiles for one date, read straight from the COGs: the fast path of WMS ``GetMap`` (and
OGC API Maps) when one day is asked for, the way TiTiler serves tiles.

The general path (:func:`sentinelle.catalog.imagery.read_imagery`) measures each scene's cloud
over the area from SCL before reading, then builds a stackstac/Dask cube: right for composites
and time series, but for a 256 × 256 tile it reads SCL twice and schedules a Dask graph, and
under concurrent requests each request's Dask threads fight the others for two cores.  A tile
of one day needs neither: the day's scenes over the layer are known from their footprints
(:func:`day_scenes`, cached), and the pixels are few.  :func:`read_tile` reads each band of
each scene with rasterio through a ``WarpedVRT`` onto the requested grid — the warp,
resampling, overview choice (:mod:`~sentinelle.catalog.overviews`) and nodata handling
stackstac uses for the cube, so the pixels are the same — then masks with SCL, combines the
scenes when several share the day (the same :func:`~sentinelle.catalog.composite.composite`)
and clips to the area.  A scene without data over the tile (outside the swath) just gives
NaN, where the general path leaves it out after measuring its cloud: same pixels.

Concurrency: rasterio releases the GIL while GDAL reads and warps, so requests overlap on
the cores; no Dask scheduler is involved.  Open datasets are kept in a small pool between
requests (:class:`DatasetPool`): GDAL's block cache belongs to an open dataset, so reopening
a COG for every tile would decode the same blocks again (about twice the read time); a
pooled dataset is used by one thread at a time (GDAL datasets are not thread-safe) and is
reopened when its file changes.  Maps are drawn on long-lived reader threads
(:func:`on_reader_thread`): PROJ transformations are per thread and cost 20 ms to 0.4 s to
build, which a server starting a thread per request would pay on every request.

``SENTINELLE_TILE_FAST_PATH=0`` switches the fast path off (every map takes the general
path); ``SENTINELLE_MAP_THREADS`` sets the number of reader threads.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import rasterio
import shapely
import xarray as xr
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT

from sentinelle.catalog.area import CRS84, Area, Grid
from sentinelle.catalog.composite import composite
from sentinelle.catalog.cube import RESAMPLING, check_budget, integer_read, readable_scenes
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.gdal import asset_errors, is_remote, reader_env, register_asset
from sentinelle.catalog.masks import Mask, SclMask
from sentinelle.catalog.overviews import ground_resolution, overview_href
from sentinelle.catalog.presets import CLASS_BANDS
from sentinelle.catalog.scenes import Asset, Scene
from sentinelle.catalog.search import area_mask
from sentinelle.catalog.source import Catalog
from sentinelle.errors import InvalidInput, NoData
from sentinelle.settings import Limits

#: scene lists kept by :func:`day_scenes` (catalog × area × day), and for how long (s): a
#: STAC API may publish new scenes; a static catalog is a new object when its file changes
SCENE_CACHE_SIZE = 512
SCENE_CACHE_TTL = 600.0
T = TypeVar("T")


# --- the scenes of a day -------------------------------------------------------------------------

_SCENES: "collections.OrderedDict[tuple, tuple[float, Catalog, tuple[Scene, ...]]]" = \
    collections.OrderedDict()
_SCENES_LOCK = threading.Lock()


def _area_key(area: Area) -> tuple:
    return (area.crs.to_string(), area.geometry.wkb)


def day_scenes(catalog: Catalog, area: Area, interval: Interval) -> tuple[Scene, ...]:
    """``catalog.find(area, interval)``: the scenes whose footprint meets ``area`` in
    ``interval``, by date — remembered per catalog, area and interval (bounded LRU, 10 min),
    so the tiles of a layer do not search the catalog (an HTTP request for a STAC API) each
    time.  Nothing is read: clouds are not measured."""
    key = (id(catalog), _area_key(area), interval.start, interval.end)
    now = time.monotonic()
    with _SCENES_LOCK:
        cached = _SCENES.get(key)
        if cached is not None and cached[1] is catalog and cached[0] > now:
            _SCENES.move_to_end(key)
            return cached[2]
    scenes = tuple(catalog.find(area, interval))
    with _SCENES_LOCK:
        _SCENES[key] = (now + SCENE_CACHE_TTL, catalog, scenes)
        _SCENES.move_to_end(key)
        while len(_SCENES) > SCENE_CACHE_SIZE:
            _SCENES.popitem(last=False)
    return scenes


def clear_caches() -> None:
    """Forget the cached scene lists and close the pooled datasets (tests, reloads)."""
    with _SCENES_LOCK:
        _SCENES.clear()
    POOL.clear()


# --- open datasets kept between requests ---------------------------------------------------------

def _file_version(href: str) -> tuple | None:
    """What identifies the version of a local file (modification time, size); None for a
    remote one (the pool's time limit covers it)."""
    path = href[len("vrt://"):].split("?", 1)[0] if href.startswith("vrt://") else href
    if is_remote(path) or path.startswith("/vsi"):
        return None
    try:
        stat = os.stat(path.removeprefix("file://"))
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class DatasetPool:
    """Idle open rasterio datasets by href, at most ``size`` in all (least recently used
    closed first), none older than ``ttl`` seconds.  :meth:`dataset` lends one to the calling
    thread alone and takes it back afterwards (closed instead if the read failed).  A forked
    process starts with an empty pool (file handles must not be shared between processes)."""

    def __init__(self, size: int = 128, ttl: float = 600.0):
        self.size, self.ttl = size, ttl
        self._idle: "collections.OrderedDict[int, tuple[tuple, float, object]]" = \
            collections.OrderedDict()
        self._lock = threading.Lock()
        self._counter = 0
        self._pid = os.getpid()

    def _take(self, key: tuple):
        now = time.monotonic()
        stale, found = [], None
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's handles are left alone
                self._idle, self._pid = collections.OrderedDict(), os.getpid()
            for token, (k, expires, ds) in list(self._idle.items()):
                if expires <= now:
                    stale.append(self._idle.pop(token)[2])
                elif found is None and k == key:
                    found = self._idle.pop(token)[2]
        for ds in stale:
            ds.close()
        return found

    def _give(self, key: tuple, ds) -> None:
        evicted = []
        with self._lock:
            self._counter += 1
            self._idle[self._counter] = (key, time.monotonic() + self.ttl, ds)
            while len(self._idle) > self.size:
                evicted.append(self._idle.popitem(last=False)[1][2])
        for old in evicted:
            old.close()

    @contextlib.contextmanager
    def dataset(self, href: str, env) -> Iterator[rasterio.io.DatasetReader]:
        key = (href, _file_version(href))
        ds = self._take(key)
        if ds is None:
            with env.open:
                ds = rasterio.open(href, sharing=False)
        ok = False
        try:
            yield ds
            ok = True
        finally:
            if ok:
                self._give(key, ds)
            else:
                ds.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), collections.OrderedDict()
        for _key, _expires, ds in idle:
            ds.close()


POOL = DatasetPool()


# --- long-lived reader threads -------------------------------------------------------------------

_READER = threading.local()
_EXECUTOR: tuple[int, ThreadPoolExecutor] | None = None
_EXECUTOR_LOCK = threading.Lock()


def fast_path_enabled() -> bool:
    """``SENTINELLE_TILE_FAST_PATH`` (on by default; ``0``/``false``/``no``/``off`` sends every
    map through the general path, e.g. to compare the two)."""
    value = os.environ.get("SENTINELLE_TILE_FAST_PATH", "").strip().lower()
    return value not in ("0", "false", "no", "off")


def reader_threads() -> int:
    """How many maps a process draws at once (``SENTINELLE_MAP_THREADS``; default twice the
    cores, at least 4): more requests wait their turn instead of thrashing the cores."""
    try:
        value = int(os.environ.get("SENTINELLE_MAP_THREADS", "") or 0)
    except ValueError:
        value = 0
    return value if value > 0 else max(4, 2 * (os.cpu_count() or 1))


def _mark_reader() -> None:
    _READER.active = True


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None or _EXECUTOR[0] != os.getpid():  # none yet, or a forked worker
            _EXECUTOR = (os.getpid(), ThreadPoolExecutor(
                reader_threads(), thread_name_prefix="sentinelle-reader",
                initializer=_mark_reader))
        return _EXECUTOR[1]


def on_reader_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` on one of the process's long-lived reader threads (inline when already on
    one).  PROJ state is per thread: GDAL's warper and pyproj rebuild their transformations
    in each new thread (20 ms to 0.4 s each), which Flask's development server, starting a
    thread per request, would pay on every request; reader threads pay it once."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        if getattr(_READER, "active", False):
            return fn(*args, **kwargs)
        return _executor().submit(fn, *args, **kwargs).result()
    return run


# --- reading ---------------------------------------------------------------------------------

def _href(asset: Asset, grid: Grid, resampling: str) -> str:
    """The file to read: for averaging, the overview that suits the grid's pixel (as
    :func:`sentinelle.catalog.cube.load_cube` chooses it)."""
    if resampling == "nearest":
        return asset.href
    target = ground_resolution(grid, asset.epsg or grid.epsg)
    if asset.resolution is None or target >= 2 * asset.resolution:
        return overview_href(asset.href, target)
    return asset.href


def _read(reader, dtype: str = "uint16") -> np.ndarray:
    """All bands of ``reader`` as ``dtype`` (uint16 or float32) with 0 (uint16) or NaN where
    masked — what a masked read filled with that value gives.  A nodata-based mask is applied
    here rather than read from GDAL's mask band (a second pass over the pixels); other masks
    (internal, alpha) are read."""
    fill = 0 if dtype == "uint16" else np.nan
    flags = reader.mask_flag_enums[0]
    if set(flags) <= {MaskFlags.nodata, MaskFlags.all_valid}:
        data = reader.read()
        nodata = reader.nodata is not None and MaskFlags.nodata in flags
        if dtype == "uint16":
            if nodata:
                data[:1][data[:1] == reader.nodata] = 0
            return data.astype("uint16", copy=False)
        out = data.astype(dtype)
        if nodata:
            out[:1][data[:1] == reader.nodata] = fill
        return out
    return np.ma.filled(reader.read(masked=True, out_dtype=dtype), fill_value=fill)


def read_dn(asset: Asset, grid: Grid, *, resampling: str = "nearest",
            scene: str | None = None, dtype: str = "uint16") -> np.ndarray:
    """The digital numbers of ``asset`` on ``grid`` (uint16 with 0, or float32 with NaN,
    where nodata or outside the file), warped as stackstac warps them: a ``WarpedVRT`` onto
    the grid with the source's nodata (or an alpha band when it has none), unless the file
    is on the grid already."""
    href = _href(asset, grid, resampling)
    env = reader_env(remote=is_remote(asset.href))
    height, width = grid.shape
    with asset_errors(href, scene=scene, band=asset.band), POOL.dataset(href, env) as ds:
        if ds.count != 1:  # reported like the cube's reader reports it
            raise RuntimeError(f"the file has {ds.count} bands; one band per asset is "
                               "expected")
        if (ds.crs.to_epsg(), ds.transform, ds.height, ds.width) == (
                grid.epsg, grid.transform, height, width):
            with env.read:
                data = _read(ds, dtype)
        else:
            with env.open_vrt:
                vrt = WarpedVRT(ds, sharing=False, resampling=Resampling[resampling],
                                add_alpha=ds.nodata is None, crs=grid.epsg,
                                transform=grid.transform, height=height, width=width)
            with vrt, env.read:
                data = _read(vrt, dtype)
    if data.shape[0] == 2:  # no nodata in the file: the alpha band says what is outside
        data[0][data[1] == 0] = 0 if dtype == "uint16" else np.nan
    return data[0]


@dataclass(frozen=True)
class Tile:
    """Reflectance per band (float32, NaN where masked or outside the area) on ``grid``, and
    what it was made from."""

    bands: Mapping[str, np.ndarray]
    grid: Grid
    dates: tuple[str, ...]
    scenes: tuple[str, ...]
    skipped: Mapping[str, str]  # scene id → why it was left out (unreadable file)
    composite: str = "none"  # the method that combined several scenes of the day

    def to_dataset(self) -> xr.Dataset:
        """The tile as :func:`~sentinelle.catalog.imagery.read_imagery` shapes its result: one
        variable per band on ``y``/``x`` pixel-centre coordinates, CRS and transform written,
        ``dates``, ``scenes``, ``resolution``, ``skipped`` and ``composite`` attributes."""
        height, width = self.grid.shape
        transform = self.grid.transform
        data = xr.Dataset(
            {band: (("y", "x"), values) for band, values in self.bands.items()},
            coords={"x": transform.c + (np.arange(width) + 0.5) * transform.a,
                    "y": transform.f + (np.arange(height) + 0.5) * transform.e},
            attrs={"dates": list(self.dates), "scenes": list(self.scenes),
                   "resolution": self.grid.resolution, "skipped": dict(self.skipped),
                   "composite": self.composite})
        return data.rio.write_crs(f"EPSG:{self.grid.epsg}").rio.write_transform(transform)


def _inside(area: Area, grid: Grid) -> np.ndarray | None:
    """Pixels of ``grid`` whose centre is in ``area`` (None: all of them, the usual tile)."""
    box = shapely.box(*grid.bounds)
    if area.to_crs(grid.crs).geometry.contains(box):
        return None
    return area_mask(area, grid)


def read_tile(scenes: Sequence[Scene], area: Area, bands: Iterable[str], grid: Grid, *,
              method: str = "median", mask: Mask | None = None,
              resampling: str = "nearest", limits: Limits | None = None) -> Tile:
    """Cloud-masked values of ``bands`` on ``grid``, from those of ``scenes`` whose
    footprint meets ``area`` (the scenes of one day: :func:`day_scenes`), combined with
    ``method`` when there are several, NaN outside ``area``: the pixels
    :func:`~sentinelle.catalog.imagery.read_imagery` gives (with ``mask`` and ``clip``), as
    numpy arrays, without cloud fractions.  ``mask`` is the source's cloud mask (SCL by
    default).  :class:`NoData` when no scene meets the area."""
    limits = limits or Limits()
    mask = mask if mask is not None else SclMask()
    bands = [b for b in dict.fromkeys(bands) if b not in CLASS_BANDS]
    if not bands:
        raise InvalidInput("at least one band is needed")
    if resampling not in RESAMPLING:
        raise InvalidInput(f"resampling must be one of {', '.join(RESAMPLING)}")
    lonlat = area.to_crs(CRS84).geometry
    scenes = sorted((s for s in scenes if lonlat.intersects(s.footprint)),
                    key=lambda s: (s.datetime, s.id))
    if not scenes:
        raise NoData("no scene covers the area on that date; check the area and the date")
    needed = bands + ([mask.band] if mask.masks else [])
    for scene in scenes:
        missing = [b for b in needed if b not in scene.assets]
        if missing:
            raise InvalidInput(
                f"scene {scene.id} has no readable asset for band(s) {', '.join(missing)}; "
                f"available: {', '.join(scene.assets)}")
    check_budget(len(scenes), len(needed), grid, limits)
    scenes, skipped = readable_scenes(scenes, needed, skip_unreadable=True)
    planes: dict[str, list[np.ndarray]] = {band: [] for band in bands}
    for scene in scenes:
        for band in needed:
            register_asset(scene.assets[band].href, scene.id, band)
        hidden = mask.hidden(read_dn(scene.assets[mask.band], grid, scene=scene.id)) \
            if mask.masks else False
        for band in bands:
            asset = scene.assets[band]
            dtype = "uint16" if integer_read([scene], band) else "float32"
            dn = read_dn(asset, grid, resampling=resampling, scene=scene.id, dtype=dtype)
            # as load_cube: float32 DN × scale + offset, NaN for nodata, then the cloud mask
            values = dn.astype("float32") * np.float32(asset.scale) + np.float32(asset.offset)
            invalid = (dn == 0) if dtype == "uint16" else np.isnan(dn)
            if asset.nodata is not None:
                invalid |= dn == asset.nodata
            values[invalid | hidden] = np.nan
            planes[band].append(values)
    if len(scenes) == 1:
        result = {band: planes[band][0] for band in bands}
    else:  # several scenes of the day: the composite the general path makes
        cube = xr.Dataset({band: (("time", "y", "x"), np.stack(planes[band])) for band in bands},
                          coords={"time": [np.datetime64(s.datetime.replace(tzinfo=None), "ns")
                                           for s in scenes]})
        reduced = composite(cube, method)
        result = {band: np.asarray(reduced[band].values, dtype="float32") for band in bands}
    inside = _inside(area, grid)
    if inside is not None:
        for values in result.values():
            values[~inside] = np.nan
    return Tile(result, grid, tuple(sorted({s.date.isoformat() for s in scenes})),
                tuple(s.id for s in scenes), skipped,
                method if len(scenes) > 1 else "none")
