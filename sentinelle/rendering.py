"""Products of the imagery path for the web adapters: the ``datetime`` convention and the map
renderer (area + bbox + size + datetime → RGBA).

The OGC API Maps provider and the WMS use :func:`render_map`: it takes plain values (a bbox
in a CRS, a size, an interval) and returns an RGBA array, knowing nothing of pygeoapi or HTTP.
Pixels come through :func:`read_pixels`: one day on a tile-sized grid is read straight from
the COGs (:mod:`sentinelle.catalog.tiles`, the fast path), anything else through
:func:`sentinelle.catalog.imagery.read_imagery` (search with SCL cloud over the area → lazy
cube → SCL mask → one date or a composite → clip); indices use the formulas of
:mod:`sentinelle.analysis.indices`; colours come from :mod:`sentinelle.analysis.render`.

Conventions shared by the coverage and map collections:

* ``datetime`` without ``/`` names a **day** (a time of day is ignored: scenes are daily);
  an interval asks for a temporal composite of the cloud-masked dates;
* no ``datetime`` means the **latest date at most** ``max_cloud`` **percent cloudy over the
  requested area** (20 % by default), measured from SCL.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import shapely
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from sentinelle.analysis.indices import compute_index, get_index
from sentinelle.analysis.render import RAMPS, Ramp, colorize, legend, true_color
from sentinelle.catalog.area import CRS84, Area, Grid, parse_crs, validate_bbox
from sentinelle.catalog.dates import Interval, parse_interval
from sentinelle.catalog.imagery import latest_clear_match, read_imagery, scene_word
from sentinelle.catalog.presets import VALUE
from sentinelle.catalog.source import Catalog
from sentinelle.catalog.tiles import (
    Tile,
    day_scenes,
    fast_path_enabled,
    on_reader_thread,
    read_tile,
)
from sentinelle.errors import (
    InvalidInput,
    NoData,
    OutsideArea,
    SourceUnavailable,
    TooLarge,
)
from sentinelle.settings import Limits

#: Sentinel-2's finest band resolution (m): coarser requests are read with ``average``.
NATIVE_RESOLUTION = 10.0
#: Largest map side (px): a map is for looking at; data goes through the coverage.
MAX_MAP_SIDE = 4096
#: Default cloud threshold (percent over the requested area) for "the latest clear date".
DEFAULT_MAX_CLOUD = 20.0
#: Colour ramp per index (``analysis.render.RAMPS``); indices not listed use ``ndvi``.
INDEX_RAMPS = {"NDVI": "ndvi", "SAVI": "ndvi", "EVI": "ndvi", "NDWI": "water", "NDMI": "water"}
TRUE_COLOR_BANDS = ("red", "green", "blue")


# --- datetime --------------------------------------------------------------------------------

@dataclass(frozen=True)
class When:
    """The dates a request asks for: ``interval`` (None = the default date), ``single`` when
    one day was named (no composite wanted)."""

    interval: Interval | None
    single: bool


def parse_when(value: str | None) -> When:
    """``None``/empty → default date; ``2024-05-17`` or ``2024-05-17T10:56:00Z`` → that UTC
    day; ``start/end`` (open ends ``..``) → a composite over the interval."""
    if value is None or not str(value).strip():
        return When(None, True)
    text = str(value).strip()
    try:
        if "/" in text:
            interval = parse_interval(text)
            if interval.start is None and interval.end is None:
                return When(Interval(None, None), False)
            return When(interval, False)
        moment = parse_interval(text).start
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    day = moment.astimezone(dt.timezone.utc).date().isoformat()
    return When(parse_interval(day), True)


def resolve_when(catalog: Catalog, area: Area, when: When, *, max_cloud: float,
                 limits: Limits) -> When:
    """Replace the default date by the latest one at most ``max_cloud`` % cloudy over
    ``area`` (raises :class:`NoData` with a hint when there is none)."""
    if when.interval is not None:
        return when
    match = latest_clear_match(catalog, area, max_cloud=max_cloud, limits=limits)
    return When(parse_interval(match.scene.date.isoformat()), True)


def scenes_for(catalog: Catalog, area: Area, interval: Interval | None, *,
               name: str = "the collection") -> list:
    """The scenes over ``area`` in ``interval`` (footprints only, nothing read), or
    :class:`NoData` naming the nearest dates that exist."""
    scenes = catalog.find(area, interval)
    if scenes:
        return scenes
    every = catalog.find(area)
    if not every:
        raise NoData(f"no {scene_word(catalog)} covers this part of {name}; check the bbox")
    start = interval.start if interval and interval.start else None
    end = interval.end if interval and interval.end else None
    before = [s.date.isoformat() for s in every if start and s.datetime < start]
    after = [s.date.isoformat() for s in every if end and s.datetime > end]
    span = (start.date().isoformat() if start else "..") + (
        "" if start and end and start.date() == end.date()
        else "/" + (end.date().isoformat() if end else ".."))
    nearest = " and ".join(x for x in (before[-1] if before else "",
                                       after[0] if after else "") if x)
    raise NoData(f"no {scene_word(catalog)} of {name} for datetime {span}; nearest date(s): "
                 f"{nearest} (all dates are listed in the collection's extent.temporal)")


# --- requested areas ------------------------------------------------------------------------

def request_area(bbox: Sequence[float] | None, bbox_crs: Any, area: Area, *,
                 name: str = "the collection", crs: Any = None,
                 resolution: float | None = None) -> Area:
    """The part of ``area`` inside ``bbox`` (in ``bbox_crs``, CRS84 by default); the whole
    area when there is no bbox.  :class:`InvalidInput` when they do not meet.

    With ``crs`` (the output grid's CRS), the bbox is first replaced by its envelope in that
    CRS, so that a lon/lat bbox gives a full rectangle of UTM pixels (only what lies outside
    the collection's area is then blank); with ``resolution`` too, that envelope is widened
    to whole pixels of that size, so edge pixels the bbox only grazes keep their values.
    """
    if not bbox:
        return area
    try:
        box = Area.from_bbox(bbox, parse_crs(bbox_crs if bbox_crs is not None else CRS84))
        target = parse_crs(crs) if crs is not None else box.crs
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    if target != box.crs:
        box = Area(shapely.box(*box.bounds_in(target)), target)
    if resolution:
        box = Area(shapely.box(*Grid.from_area(box, target, resolution).bounds), target)
    crs = target
    outline = area.to_crs(crs).geometry
    inside = shapely.intersection(box.geometry, outline)
    if inside.is_empty or inside.area <= 0:
        lon = ", ".join(f"{v:.4f}" for v in area.lonlat_bounds)
        raise InvalidInput(
            f"the bbox {list(bbox)} does not meet the area of {name} "
            f"(lon/lat bounds {lon}); move the bbox or check bbox-crs"
        )
    return Area(inside, crs)


def compute(data):
    """``data.compute()``, with unreadable assets reported as :class:`SourceUnavailable`."""
    try:
        return data.compute()
    except OSError as err:
        raise SourceUnavailable(f"an image could not be read: {err}") from err


# --- pixels of a map --------------------------------------------------------------------------

def _one_tile(when: When, grid: Grid, limits: Limits) -> bool:
    """Whether the fast path serves the request: one day on a grid of at most one chunk
    (and the fast path not switched off)."""
    return (when.interval is not None and when.single
            and max(grid.shape) <= limits.chunk_size and fast_path_enabled())


def _read_tile(catalog: Catalog, area: Area, part: Area, when: When, bands: Sequence[str],
               grid: Grid, *, method: str, resampling: str, limits: Limits,
               name: str) -> Tile:
    try:
        return read_tile(day_scenes(catalog, area, when.interval), part, bands, grid,
                         method=method, mask=catalog.mask, resampling=resampling,
                         limits=limits)
    except NoData:
        scenes_for(catalog, part, when.interval, name=name)  # names the nearest dates
        raise


def _read_general(catalog: Catalog, part: Area, when: When, bands: Sequence[str], grid: Grid,
                  *, method: str, resampling: str, limits: Limits, name: str):
    if when.interval is not None:
        scenes_for(catalog, part, when.interval, name=name)
    return read_imagery(catalog, part, when.interval, bands, crs=grid.crs,
                        resolution=grid.resolution, method=method, mask=True, clip=True,
                        resampling=resampling, limits=limits,
                        anchor=(grid.transform.c, grid.transform.f))


@on_reader_thread
def read_pixels(catalog: Catalog, area: Area, part: Area, when: When, bands: Sequence[str],
                grid: Grid, *, method: str = "median", resampling: str = "nearest",
                limits: Limits | None = None, name: str = "the layer"):
    """Cloud-masked reflectance of ``bands`` over ``part`` (a piece of the layer's ``area``)
    on ``grid``, NaN outside ``part``: the 2-D dataset
    :func:`~sentinelle.catalog.imagery.read_imagery` gives, ``dates`` and ``scenes`` in its
    attributes.

    One day on a grid of at most one chunk (a map tile, a GetFeatureInfo block) takes the
    fast path, :func:`sentinelle.catalog.tiles.read_tile`: the day's scenes over the layer
    come from a cache and the COGs are read straight onto the grid (already computed),
    without measuring clouds or building a Dask graph.  Intervals (composites), larger grids
    and no date at all take the general path, ``read_imagery`` (lazy).  Both give the same
    pixels.
    """
    limits = limits or Limits()
    options = dict(method=method, resampling=resampling, limits=limits, name=name)
    if _one_tile(when, grid, limits):
        return _read_tile(catalog, area, part, when, bands, grid, **options).to_dataset()
    return _read_general(catalog, part, when, bands, grid, **options)


# --- maps ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderedMap:
    """RGBA pixels (height, width, 4) and what they were made from."""

    rgba: np.ndarray
    dates: tuple[str, ...]
    scenes: tuple[str, ...]


def _ground_resolution(bbox: Sequence[float], crs, size: tuple[int, int]) -> float:
    """Approximate ground size (m) of one output pixel: the bbox's area on the ground divided
    by the number of pixels (ground from a local UTM zone)."""
    area = Area.from_bbox(bbox, crs)
    lon, lat = area.to_crs(CRS84).geometry.centroid.coords[0]
    zone = int((lon + 180) // 6) + 1
    utm = 32600 + zone if lat >= 0 else 32700 + zone
    ground = area.to_crs(utm).geometry.area
    return math.sqrt(ground / (size[0] * size[1]))


def index_values(tile: Tile, index: str) -> np.ndarray:
    """``index`` from the tile's bands (float32), with the registry's formula — what
    :func:`~sentinelle.analysis.indices.compute_index` gives for the same reflectances."""
    spec = get_index(index)
    return np.asarray(spec.compute(*(tile.bands[b] for b in spec.bands)), dtype="float32")


def _window(grid: Grid, transform: Affine, shape: tuple[int, int]) -> tuple[int, int] | None:
    """(row, col) of ``transform``'s origin in ``grid`` when the output grid (``transform``,
    ``shape``) is made of whole pixels of ``grid`` (same size, aligned, inside), else None:
    then placing by nearest neighbour is slicing."""
    src = grid.transform
    if not (math.isclose(src.a, transform.a, rel_tol=1e-9)
            and math.isclose(src.e, transform.e, rel_tol=1e-9) and src.b == src.d == 0
            and transform.b == transform.d == 0):
        return None
    col_f, row_f = (transform.c - src.c) / src.a, (transform.f - src.f) / src.e
    col, row = round(col_f), round(row_f)
    if abs(col_f - col) > 1e-6 or abs(row_f - row) > 1e-6:
        return None
    if row < 0 or col < 0 or row + shape[0] > grid.shape[0] or col + shape[1] > grid.shape[1]:
        return None
    return row, col


def outside(area: Area, name: str) -> OutsideArea:
    """The error for a map requested entirely outside ``area`` (naming where it is)."""
    lon = ", ".join(f"{v:.4f}" for v in area.lonlat_bounds)
    return OutsideArea(f"the bbox lies outside {name}, whose lon/lat bounds are {lon}; move "
                       "the map over that area")


@on_reader_thread
def render_map(catalog: Catalog, area: Area, bbox: Sequence[float], crs: Any,
               size: tuple[int, int], *, index: str | None = None, when: When | None = None,
               method: str = "median", max_cloud: float = DEFAULT_MAX_CLOUD,
               transparent: bool = True, limits: Limits | None = None,
               name: str = "the layer", values: Ramp | None = None) -> RenderedMap:
    """The map of ``area`` inside ``bbox`` (in ``crs``, x/easting first) as exactly
    ``size = (width, height)`` RGBA pixels: true colour, ``index`` through its colour ramp,
    or with ``values`` a single-band product's values through that ramp.

    Clouds (the source's mask) and everything outside ``area`` are transparent (white when not
    ``transparent``); a bbox that misses the area is :class:`OutsideArea` (404).  Pixels are
    loaded at the output resolution, averaged when coarser than 10 m, then placed on the
    output grid by nearest neighbour.
    """
    limits = limits or Limits()
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise InvalidInput(f"width and height must be positive, got {width}×{height}")
    if max(width, height) > MAX_MAP_SIDE:
        raise TooLarge(f"maps are at most {MAX_MAP_SIDE}×{MAX_MAP_SIDE} px, got "
                       f"{width}×{height}; ask for a smaller image (or use the coverage)")
    try:
        out_crs = parse_crs(crs)
        minx, miny, maxx, maxy = validate_bbox(bbox, out_crs)
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    if index is not None:
        index = get_index(index).name
    # rasterio/stackstac read EPSG:4326 as lon/lat, which is what CRS84 means
    load_crs = parse_crs(4326) if out_crs == CRS84 else out_crs
    out_transform = Affine((maxx - minx) / width, 0, minx, 0, -(maxy - miny) / height, maxy)
    rgba = np.zeros((height, width, 4), dtype="uint8")
    if not transparent:
        rgba[...] = 255
    try:
        part = request_area((minx, miny, maxx, maxy), out_crs, area)
    except InvalidInput:
        raise outside(area, name) from None
    when = when or When(None, True)
    when = resolve_when(catalog, part, when, max_cloud=max_cloud, limits=limits)
    resolution = min(out_transform.a, -out_transform.e)
    ground = _ground_resolution((minx, miny, maxx, maxy), out_crs, (width, height))
    resampling = "average" if ground > NATIVE_RESOLUTION * 1.01 else "nearest"
    bands = (VALUE,) if values is not None else get_index(index).bands if index \
        else TRUE_COLOR_BANDS
    grid = Grid.from_area(part, load_crs, resolution, anchor=(minx, maxy))
    options = dict(method=method, resampling=resampling, limits=limits, name=name)
    names = [index] if index else list(bands)
    if _one_tile(when, grid, limits):  # numpy all the way
        tile = _read_tile(catalog, area, part, when, bands, grid, **options)
        arrays = {index: index_values(tile, index)} if index else dict(tile.bands)
        src_grid, dates, scenes = tile.grid, tile.dates, tile.scenes
    else:
        data = _read_general(catalog, part, when, bands, grid, **options)
        computed = compute(compute_index(data, index)) if index else compute(data[names])
        arrays = {index: computed.values} if index else {b: computed[b].values for b in names}
        src_grid = Grid(grid.crs, data.rio.transform(), (data.sizes["y"], data.sizes["x"]))
        dates, scenes = tuple(data.attrs.get("dates", ())), tuple(data.attrs.get("scenes", ()))
    src_transform = src_grid.transform
    window = _window(src_grid, out_transform, (height, width))

    def place(values: np.ndarray) -> np.ndarray:
        if window is not None:  # the usual tile: the output pixels are pixels of the read
            row, col = window
            return np.asarray(values[row:row + height, col:col + width], dtype="float32")
        out = np.full((height, width), np.nan, dtype="float32")
        reproject(np.asarray(values, dtype="float32"), out, src_transform=src_transform,
                  src_crs=load_crs, dst_transform=out_transform, dst_crs=load_crs,
                  src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.nearest)
        return out

    if values is not None:
        image = colorize(place(arrays[VALUE]), values)
    elif index:
        image = colorize(place(arrays[index]), INDEX_RAMPS.get(index, "ndvi"))
    else:
        image = true_color(*(place(arrays[b]) for b in TRUE_COLOR_BANDS))
    rgba = np.where(image[..., 3:] > 0, image, rgba)
    return RenderedMap(rgba, dates, scenes)


def _ascii(text: str) -> str:
    """``text`` without accents (PIL's built-in font has none)."""
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def legend_png(index: str | None = None, *, width: int = 300, ramp: Ramp | None = None,
               title: str | None = None) -> bytes:
    """A labelled colour bar (PNG) for ``index``'s ramp (or ``ramp`` with ``title``, a
    product's): title, bar, a tick per ramp stop."""
    from PIL import Image, ImageDraw, ImageFont

    if ramp is None:
        spec = get_index(index)
        ramp = RAMPS[INDEX_RAMPS.get(spec.name, "ndvi")]
        title = f"{spec.name} = {spec.formula}"
    margin, bar_height = 14, 18
    bar_width = width - 2 * margin
    canvas = Image.new("RGBA", (width, 64), (255, 255, 255, 230))
    canvas.paste(Image.fromarray(legend(ramp, width=bar_width, height=bar_height), "RGBA"),
                 (margin, 20))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    # PIL's built-in font has no accents: the formula is ASCII and says it all
    draw.text((margin, 3), _ascii(title or ""), fill="black", font=font)
    low, high = ramp.range
    for value, _colour in ramp.stops:
        x = margin + round((value - low) / (high - low) * (bar_width - 1))
        draw.line([(x, 20 + bar_height), (x, 20 + bar_height + 4)], fill="black")
        label = f"{value:g}"
        left = min(max(x - 3 * len(label), 0), width - 6 * len(label))
        draw.text((left, 20 + bar_height + 6), label, fill="black", font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
