"""Pixels of the derived WMS layers (:class:`sentinelle.ows.layers.Preset`): the rules
land-cover classification and the index change between a preset period and TIME.

Both go through the catalog's one path (:func:`sentinelle.catalog.imagery.read_imagery`:
search → lazy cube → SCL mask → one date or a composite → clip) and the analysis functions the
processes use (:func:`sentinelle.analysis.classify.classify_rules`,
:func:`sentinelle.analysis.change.detect_change`), so a map pixel has the class or the change
that the ``classification`` and ``change-detection`` processes give for it.

Maps are read at the output resolution like the other layers (reflectances averaged when the
map is coarser than 10 m, then classified), placed on the output grid by nearest neighbour.
Change patches smaller than the preset's ``min_area_ha`` are removed (as the process does) on
the grid that was read, except patches cut by its edge, whose size is unknown there: they are
kept.  GetFeatureInfo reads a window wide enough around the pixel for its answer to be exact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject
from shapely.geometry import Point

from sentinelle.analysis import change as ch
from sentinelle.analysis import classify as cl
from sentinelle.analysis.indices import compute_index, get_index
from sentinelle.analysis.render import classes_rgba
from sentinelle.catalog.area import CRS84, Area, Grid, _transformer, parse_crs, validate_bbox
from sentinelle.catalog.dates import Interval, parse_interval
from sentinelle.catalog.imagery import read_imagery
from sentinelle.errors import InvalidInput, NoData, SourceUnavailable
from sentinelle.ows.layers import CLASSIFICATION_BANDS, Layer, PixelValue
from sentinelle.rendering import When, compute, request_area
from sentinelle.settings import Limits

try:  # the tile fast path of the WMS renderer (sentinelle.catalog.tiles), when installed
    from sentinelle.rendering import read_pixels
except ImportError:  # pragma: no cover - a renderer without it: the general path only
    read_pixels = None

NATIVE_RESOLUTION = 10.0
BLOCK = 60.0  # m, a multiple of every Sentinel-2 resolution
#: widest margin (m) read around a GetFeatureInfo pixel of a change layer
MAX_MARGIN = 3000.0
#: colours of the change layer: stable and no data stay transparent (an overlay)
CHANGE_COLOURS = {ch.LOSS: ch.CHANGE_COLOURS[ch.LOSS], ch.GAIN: ch.CHANGE_COLOURS[ch.GAIN]}
#: fonts with accents, in the order tried (Debian's fonts-dejavu-core, then others)
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
         "/usr/share/fonts/TTF/DejaVuSans.ttf")


# --- the map grid ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MapGrid:
    """Where a map's pixels are: the output grid and how the imagery is read for it."""

    part: Area            # the layer's area inside the bbox
    load_crs: Any
    transform: Affine     # output pixels
    shape: tuple[int, int]  # (height, width)
    resolution: float     # of the read, in load_crs units
    resampling: str       # "average" when coarser than 10 m, else "nearest"
    anchor: tuple[float, float]


def _ground_resolution(bbox: Sequence[float], crs, size: tuple[int, int]) -> float:
    """Approximate ground size (m) of one output pixel (area from a local UTM zone)."""
    area = Area.from_bbox(bbox, crs)
    lon, lat = area.to_crs(CRS84).geometry.centroid.coords[0]
    zone = int((lon + 180) // 6) + 1
    utm = (32600 if lat >= 0 else 32700) + zone
    return math.sqrt(area.to_crs(utm).geometry.area / (size[0] * size[1]))


def map_grid(layer: Layer, bbox: Sequence[float], crs, size: tuple[int, int]) -> MapGrid | None:
    """The grid of a map of ``layer`` (None when the bbox misses the layer's area)."""
    width, height = (int(v) for v in size)
    try:
        out_crs = parse_crs(crs)
        minx, miny, maxx, maxy = validate_bbox(bbox, out_crs)
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    try:
        part = request_area((minx, miny, maxx, maxy), out_crs, layer.source.area)
    except InvalidInput:
        return None
    transform = Affine((maxx - minx) / width, 0, minx, 0, -(maxy - miny) / height, maxy)
    ground = _ground_resolution((minx, miny, maxx, maxy), out_crs, (width, height))
    # rasterio/stackstac read EPSG:4326 as lon/lat, which is what CRS84 means
    load_crs = parse_crs(4326) if out_crs == CRS84 else out_crs
    return MapGrid(part, load_crs, transform, (height, width),
                   min(transform.a, -transform.e),
                   "average" if ground > NATIVE_RESOLUTION * 1.01 else "nearest", (minx, maxy))


def _reader(layer: Layer, part: Area, limits: Limits, *, crs, resolution: float,
            resampling: str = "nearest", anchor: tuple[float, float] = (0.0, 0.0)):
    """``read(when, bands)``: the layer's cloud-masked imagery of ``part`` (NaN outside it)
    on one grid, whatever the period, so that both periods of a change line up.

    One day goes through the WMS's tile fast path
    (:func:`sentinelle.rendering.read_pixels`, when the installed renderer has it), anything
    else through :func:`~sentinelle.catalog.imagery.read_imagery`: the same pixels."""
    source = layer.source
    grid = Grid.from_area(part, crs, resolution, anchor=anchor)

    def read(when: When, bands: Sequence[str]):
        if read_pixels is not None:
            return read_pixels(source.catalog, source.area, part, when, bands, grid,
                               method=source.composite, resampling=resampling, limits=limits,
                               name=layer.name)
        return read_imagery(source.catalog, part, when.interval, bands, crs=crs,
                            resolution=resolution, method=source.composite, mask=True,
                            clip=True, resampling=resampling, limits=limits, anchor=anchor)
    return read


def _map_reader(layer: Layer, grid: MapGrid, limits: Limits):
    return _reader(layer, grid.part, limits, crs=grid.load_crs, resolution=grid.resolution,
                   resampling=grid.resampling, anchor=grid.anchor)


def _place(values: np.ndarray, src_transform: Affine, grid: MapGrid) -> np.ndarray:
    """Class codes (0 = nothing) moved onto the output grid by nearest neighbour."""
    out = np.zeros(grid.shape, dtype="uint8")
    reproject(np.asarray(values, dtype="uint8"), out, src_transform=src_transform,
              src_crs=grid.load_crs, dst_transform=grid.transform, dst_crs=grid.load_crs,
              src_nodata=0, dst_nodata=0, resampling=Resampling.nearest)
    return out


# --- change ---------------------------------------------------------------------------------

def periods(layer: Layer, when: When) -> tuple[When, When]:
    """The "before" and "after" periods of a change map: the preset's ``before``; TIME (else
    the layer's default date), starting after ``before`` ends."""
    text = layer.preset.before
    before = When(parse_interval(text), "/" not in text)
    interval = when.interval or parse_interval(layer.time.default)
    start = interval.start
    if start is None or start <= before.interval.end:
        start = before.interval.end + dt.timedelta(microseconds=1)
    return before, When(Interval(start, interval.end), when.single)


def sieve_inner(classes: np.ndarray, min_pixels: int) -> np.ndarray:
    """Loss/gain patches (4-connected) smaller than ``min_pixels`` set to stable, except the
    patches that touch the array's edge (their size is not known from this window)."""
    out = np.array(classes, dtype="uint8", copy=True)
    if min_pixels <= 1:
        return out
    labels, _kinds = ch.label_changes(out)
    if labels.max() == 0:
        return out
    sizes = np.bincount(labels.ravel())
    small = sizes < min_pixels
    small[0] = False
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small[edge] = False
    out[small[labels]] = ch.STABLE
    return out


def _change(layer: Layer, read, when: When):
    """(classes sieved, delta, before, after index values, transform, attrs) on one grid;
    ``read(when, bands)`` reads the imagery."""
    preset = layer.preset
    spec = get_index(preset.index)
    before, after = periods(layer, when)
    first = read(before, spec.bands)
    second = read(after, spec.bands)
    if not first.rio.transform().almost_equals(second.rio.transform()) or \
            first.sizes["x"] != second.sizes["x"] or first.sizes["y"] != second.sizes["y"]:
        raise SourceUnavailable("the before and after periods were read on different grids")
    b = compute_index(first, spec.name)
    a = compute_index(second, spec.name).assign_coords(x=b.x, y=b.y)
    result = compute(ch.detect_change(b, a, threshold=preset.effective_threshold,
                                      method=preset.method))
    transform = first.rio.transform()
    pixels = ch.min_pixels(preset.min_area_ha, ch.pixel_area_m2(transform, first.rio.crs))
    classes = sieve_inner(result["change"].values, pixels)
    return (classes, result["delta"].values, result["before"].values, result["after"].values,
            transform, {"before": first.attrs, "after": second.attrs})


# --- maps -----------------------------------------------------------------------------------

def draw(layer: Layer, bbox: Sequence[float], crs, size: tuple[int, int], when: When,
         limits: Limits) -> np.ndarray:
    """RGBA (height, width, 4) of a derived layer; transparent where there is nothing."""
    grid = map_grid(layer, bbox, crs, size)
    empty = np.zeros((int(size[1]), int(size[0]), 4), dtype="uint8")
    if grid is None:
        return empty
    read = _map_reader(layer, grid, limits)
    try:
        if layer.kind == "classification":
            data = read(when, CLASSIFICATION_BANDS)
            classes = compute(cl.classify_rules(data)).values
            return classes_rgba(_place(classes, data.rio.transform(), grid),
                                cl.RULES_LEGEND.colours)
        classes, *_rest, transform, _attrs = _change(layer, read, when)
        return classes_rgba(_place(classes, transform, grid), CHANGE_COLOURS)
    except NoData:
        return empty


# --- GetFeatureInfo ------------------------------------------------------------------------

def _value(value: float) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def pixel_value(layer: Layer, x: float, y: float, crs, when: When, limits: Limits,
                lang: str = "fr"):
    """The class (code and name in ``lang``) of the native 10 m pixel under ``(x, y)`` (in
    ``crs``, x first), with the values it comes from: NDVI/NDWI/NDMI for the classification;
    the index before and after and their difference for the change (patches under
    ``min_area_ha`` read as stable, as the change-detection process counts them)."""

    lon, lat = _transformer(crs, CRS84).transform(x, y)
    if layer.kind == "classification":
        names = ["class", "label", "NDVI", "NDWI", "NDMI"]
    else:
        names = ["class", "label", "delta", "before", "after", "before_dates"]
    empty = PixelValue(layer.name, lon, lat, {name: None for name in names}, (), ())
    epsg = layer.time.native_epsg
    if epsg is None:
        return empty
    px, py = _transformer(crs, parse_crs(epsg)).transform(x, y)
    x0 = math.floor(px / NATIVE_RESOLUTION) * NATIVE_RESOLUTION
    y0 = math.floor(py / NATIVE_RESOLUTION) * NATIVE_RESOLUTION
    centre = Point(x0 + NATIVE_RESOLUTION / 2, y0 + NATIVE_RESOLUTION / 2)
    area = layer.source.area
    if not area.to_crs(epsg).geometry.contains(centre):
        return empty
    # the 60 m block holding the pixel (whole 20 m SCL pixels, as the other layers read it);
    # for a change, widened so that a patch under min_area_ha cannot reach the edge
    margin = 0.0
    if layer.kind == "change":
        pixels = ch.min_pixels(layer.preset.min_area_ha, NATIVE_RESOLUTION ** 2)
        margin = min(BLOCK * math.ceil(pixels * NATIVE_RESOLUTION / BLOCK), MAX_MARGIN)
    bx, by = math.floor(px / BLOCK) * BLOCK, math.floor(py / BLOCK) * BLOCK
    window = Area.from_bbox([bx - margin, by - margin, bx + BLOCK + margin,
                             by + BLOCK + margin], epsg)
    part = Area(window.geometry.intersection(area.to_crs(epsg).geometry), window.crs)
    read = _reader(layer, part, limits, crs=epsg, resolution=NATIVE_RESOLUTION)
    try:
        if layer.kind == "classification":
            computed = compute(read(when, CLASSIFICATION_BANDS))
            classes = cl.classify_rules(computed).values
            arrays = {name: compute_index(computed, name).values for name in cl.INDEX_FEATURES}
            transform, attrs = computed.rio.transform(), computed.attrs
        else:
            classes, delta, before, after, transform, both = _change(layer, read, when)
            arrays = {"delta": delta, "before": before, "after": after}
            attrs = both["after"]
    except NoData:
        return empty
    col, row = (int(v) for v in ~transform * (centre.x, centre.y))
    code = int(classes[row, col])
    legend = cl.RULES_LEGEND.names if layer.kind == "classification" else ch.CHANGE_CLASSES
    values: dict[str, Any] = {"class": code if code else None,
                              "label": legend[code][lang] if code in legend and code else None}
    values.update({name: _value(array[row, col]) for name, array in arrays.items()})
    if layer.kind == "change":
        values["before_dates"] = ", ".join(both["before"].get("dates", ())) or None
    return dataclasses.replace(empty, values=values,
                               dates=tuple(attrs.get("dates", ())),
                               scenes=tuple(attrs.get("scenes", ())))


# --- legends --------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _font(size: int):
    """A TrueType font with accents when the system has one, else PIL's (ASCII only)."""
    from PIL import ImageFont

    for path in FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size), True
    return ImageFont.load_default(), False


def _text(text: str, unicode_ok: bool) -> str:
    if unicode_ok:
        return text
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.replace("−", "-")


def legend_rows(layer: Layer, lang: str) -> tuple[str, list[tuple[str, tuple | None]]]:
    """The legend's title and rows (label, RGB or None for transparent)."""
    if layer.kind == "classification":
        names, colours = cl.RULES_LEGEND.names, cl.RULES_LEGEND.colours
        title = ("Occupation du sol (règles)" if lang == "fr" else "Land cover (rules)")
        return title, [(f"{code}  {names[code][lang]}", colours[code]) for code in sorted(names)]
    preset = layer.preset
    threshold = f"{preset.effective_threshold:g}"
    if lang == "fr":
        threshold = threshold.replace(".", ",")
    what = "après − avant" if lang == "fr" else "after − before"
    if preset.method == "relative":
        what = "(après − avant) / |avant|" if lang == "fr" else "(after − before) / |before|"
    title = f"{preset.index} : {what}, ±{threshold}" if lang == "fr" \
        else f"{preset.index}: {what}, ±{threshold}"
    rows = [(f"{ch.LOSS}  {ch.CHANGE_CLASSES[ch.LOSS][lang]}", CHANGE_COLOURS[ch.LOSS]),
            (f"{ch.GAIN}  {ch.CHANGE_CLASSES[ch.GAIN][lang]}", CHANGE_COLOURS[ch.GAIN]),
            (f"{ch.STABLE}  {ch.CHANGE_CLASSES[ch.STABLE][lang]} (transparent)", None)]
    return title, rows


#: legend layout (px): title band, then one row per class with its swatch
LEGEND_TOP, LEGEND_ROW, SWATCH = 28, 20, (14, 6, 30, 20)


def legend_png(layer: Layer, lang: str) -> bytes:
    """The legend (PNG, :attr:`Layer.legend_size`): a title, then a swatch and the code and
    name of each class, in ``lang``."""
    from PIL import Image, ImageDraw

    width, height = layer.legend_size
    title, rows = legend_rows(layer, lang)
    canvas = Image.new("RGBA", (width, height), (255, 255, 255, 230))
    draw = ImageDraw.Draw(canvas)
    font, unicode_ok = _font(12)
    draw.text((14, 7), _text(title, unicode_ok), fill="black", font=font)
    left, top, right, bottom = SWATCH
    for k, (label, colour) in enumerate(rows):
        y = LEGEND_TOP + k * LEGEND_ROW
        box = [left, y + top - 6, right, y + bottom - 6]
        if colour is None:
            draw.rectangle(box, outline="black")
        else:
            draw.rectangle(box, fill=tuple(colour), outline="black")
        draw.text((right + 10, y + 1), _text(label, unicode_ok), fill="black", font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def swatch_centre(row: int) -> tuple[int, int]:
    """Pixel (x, y) at the centre of the ``row``-th swatch of a legend (for tests)."""
    left, top, right, bottom = SWATCH
    y = LEGEND_TOP + row * LEGEND_ROW
    return (left + right) // 2, (y + top - 6 + y + bottom - 6) // 2


__all__ = ["draw", "legend_png", "legend_rows", "map_grid", "periods", "pixel_value",
           "sieve_inner"]

