"""WMS 1.3.0 request parameters, validated by plain functions.

Every function takes raw strings and returns clean values, or raises :class:`WmsError` carrying
the WMS 1.3.0 exception code (``InvalidCRS``, ``LayerNotDefined``…) and the parameter name as
locator.  No HTTP, no rendering here: :mod:`sentinelle.ows.wms` calls these, then the renderer.

Axis order is the one WMS 1.3.0 mandates: the CRS's own.  ``EPSG:4326``, ``EPSG:4258``,
``EPSG:4624`` are latitude/longitude and ``EPSG:3035`` northing/easting, so their BBOX comes
y first; ``CRS:84``, ``EPSG:3857``, ``EPSG:2154``, ``EPSG:2972`` and the UTM zones are x first.
:func:`parse_bbox` always returns x/easting first, which is what the renderer takes.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from pyproj import CRS

from sentinelle.catalog.area import CRS84
from sentinelle.catalog.dates import Interval, parse_interval
from sentinelle.rendering import MAX_MAP_SIDE, When

VERSION = "1.3.0"
MAP_FORMATS = ("image/png", "image/jpeg")
INFO_FORMATS = ("text/plain", "application/json", "text/html")
LEGEND_FORMATS = ("image/png",)
#: Names a client may use for a layer's default style.
DEFAULT_STYLE_NAMES = ("", "default", "inspire_common:default")
#: WMS LANGUAGE values (ISO 639-2/B, as INSPIRE uses them) → our language code.
LANGUAGES = {"fre": "fr", "fra": "fr", "fr": "fr", "eng": "en", "en": "en"}
ISO639_2 = {"fr": "fre", "en": "eng"}
MAX_LAYERS = 8


class WmsError(ValueError):
    """A WMS 1.3.0 service exception: ``code`` (the standard's exception code, or None for a
    generic one), ``locator`` (the offending parameter) and a message saying how to fix it."""

    def __init__(self, message: str, code: str | None = "InvalidParameterValue",
                 locator: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.locator = locator
        self.status = status


def normalise(args: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Parameter names are case-insensitive in WMS: upper-case them (first value wins)."""
    items = args.items(multi=True) if hasattr(args, "items") and hasattr(args, "getlist") \
        else (args.items() if hasattr(args, "items") else args)
    params: dict[str, str] = {}
    for key, value in items:
        params.setdefault(str(key).upper(), str(value))
    return params


def require(params: Mapping[str, str], name: str) -> str:
    """The value of a mandatory parameter (``MissingParameterValue`` when absent/empty)."""
    value = params.get(name, "").strip()
    if not value:
        raise WmsError(f"parameter {name} is missing", "MissingParameterValue", name)
    return value


def parse_language(value: str | None) -> str:
    """``fre``/``eng`` (or ``fr``/``en``) → ``fr``/``en``; anything else falls back to French."""
    return LANGUAGES.get(str(value or "").strip().lower(), "fr")


def check_service(params: Mapping[str, str]) -> None:
    service = params.get("SERVICE", "WMS").strip()
    if service and service.upper() != "WMS":
        raise WmsError(f"SERVICE must be WMS, got {service!r}", "InvalidParameterValue",
                       "SERVICE")


def check_version(params: Mapping[str, str], request: str) -> None:
    """GetMap and GetFeatureInfo need VERSION=1.3.0 (the only version served);
    GetCapabilities and GetLegendGraphic accept any (answering 1.3.0)."""
    version = params.get("VERSION", "").strip()
    if request in ("GetMap", "GetFeatureInfo"):
        if not version:
            raise WmsError("parameter VERSION is missing (this service speaks 1.3.0)",
                           "MissingParameterValue", "VERSION")
        if version != VERSION:
            raise WmsError(f"VERSION {version} is not supported; use VERSION=1.3.0",
                           "InvalidParameterValue", "VERSION")


def parse_layers(value: str, known: Iterable[str], *, locator: str = "LAYERS") -> list[str]:
    names = [v.strip() for v in value.split(",")]
    if not names or any(not n for n in names):
        raise WmsError(f"{locator} must be a comma-separated list of layer names",
                       "LayerNotDefined", locator)
    known = list(known)
    for name in names:
        if name not in known:
            raise WmsError(f"no layer {name!r}; see GetCapabilities for the layers "
                           f"(e.g. {', '.join(known[:3])})", "LayerNotDefined", locator)
    if len(names) > MAX_LAYERS:
        raise WmsError(f"at most {MAX_LAYERS} layers per request", "InvalidParameterValue",
                       locator)
    return names


def parse_styles(value: str | None, layers: Sequence[str],
                 styles_of: Mapping[str, Sequence[str]]) -> list[str]:
    """One style per layer (empty = default); each must be one the layer declares."""
    text = (value or "").strip()
    if not text:
        return [styles_of[name][0] for name in layers]
    given = [v.strip() for v in text.split(",")]
    if len(given) != len(layers):
        raise WmsError(f"STYLES lists {len(given)} style(s) for {len(layers)} layer(s); give one "
                       "per layer or leave STYLES empty", "StyleNotDefined", "STYLES")
    styles = []
    for name, style in zip(layers, given):
        declared = list(styles_of[name])
        if style.lower() in DEFAULT_STYLE_NAMES:
            styles.append(declared[0])
        elif style in declared:
            styles.append(style)
        else:
            raise WmsError(f"layer {name} has no style {style!r}; available: "
                           f"{', '.join(declared)}", "StyleNotDefined", "STYLES")
    return styles


@functools.lru_cache(maxsize=64)
def crs_from_code(code: str) -> CRS:
    """``CRS:84`` → OGC:CRS84, ``EPSG:n`` → that CRS (ValueError when unknown)."""
    text = code.strip().upper()
    if text in ("CRS:84", "OGC:CRS84"):
        return CRS84
    if not text.startswith("EPSG:") or not text[5:].isdigit():
        raise ValueError(f"not a WMS CRS code: {code!r}")
    return CRS.from_epsg(int(text[5:]))


def yx_order(crs: CRS) -> bool:
    """Whether the CRS's first axis is northing/latitude (WMS 1.3.0 then wants y first)."""
    axes = crs.axis_info
    return bool(axes) and axes[0].direction.lower() in ("north", "south")


def parse_crs(value: str, allowed: Sequence[str]) -> tuple[str, CRS]:
    """The CRS code as declared (e.g. ``EPSG:2154``) and its pyproj CRS; ``InvalidCRS`` when
    the layer(s) do not offer it."""
    code = value.strip().upper()
    if code not in [a.upper() for a in allowed]:
        raise WmsError(f"CRS {value!r} is not offered by the requested layer(s); "
                       f"available: {', '.join(allowed)}", "InvalidCRS", "CRS")
    return code, crs_from_code(code)


def parse_bbox(value: str, crs: CRS) -> tuple[float, float, float, float]:
    """BBOX in the CRS's axis order → (minx, miny, maxx, maxy) x/easting first.

    A min above its max is ``InvalidParameterValue`` (WMS 1.3.0 §7.3.5); for lat/lon CRSs the
    message reminds of the axis order, the usual cause.
    """
    parts = value.split(",")
    if len(parts) != 4:
        raise WmsError(f"BBOX needs 4 numbers, got {len(parts)}", "InvalidParameterValue",
                       "BBOX")
    try:
        a, b, c, d = (float(v) for v in parts)
    except ValueError:
        raise WmsError(f"BBOX values must be numbers, got {value!r}", "InvalidParameterValue",
                       "BBOX") from None
    if not all(math.isfinite(v) for v in (a, b, c, d)):
        raise WmsError("BBOX values must be finite", "InvalidParameterValue", "BBOX")
    swapped = yx_order(crs)
    if a >= c or b >= d:
        hint = (" (in WMS 1.3.0 this CRS takes BBOX=minlat,minlon,maxlat,maxlon)"
                if swapped and crs.is_geographic else
                " (in WMS 1.3.0 this CRS takes BBOX=minnorthing,mineasting,maxnorthing,"
                "maxeasting)" if swapped else "")
        raise WmsError(f"BBOX must be minx,miny,maxx,maxy with min < max, got {value}{hint}",
                       "InvalidParameterValue", "BBOX")
    if swapped:
        a, b, c, d = b, a, d, c
    if crs.is_geographic and (a < -180 or c > 180 or b < -90 or d > 90):
        raise WmsError(f"BBOX {value} is outside the valid longitude/latitude range (check "
                       "the axis order)", "InvalidParameterValue", "BBOX")
    return a, b, c, d


def axis_ordered(bbox: Sequence[float], crs: CRS) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) x first → the CRS's axis order (for capabilities)."""
    minx, miny, maxx, maxy = bbox
    return (miny, minx, maxy, maxx) if yx_order(crs) else (minx, miny, maxx, maxy)


def parse_size(params: Mapping[str, str]) -> tuple[int, int]:
    size = []
    for name in ("WIDTH", "HEIGHT"):
        text = require(params, name)
        try:
            number = int(text)
        except ValueError:
            raise WmsError(f"{name} must be a whole number of pixels, got {text!r}",
                           "InvalidParameterValue", name) from None
        if not 1 <= number <= MAX_MAP_SIDE:
            raise WmsError(f"{name} must be between 1 and {MAX_MAP_SIDE}, got {number}",
                           "InvalidParameterValue", name)
        size.append(number)
    return size[0], size[1]


def parse_format(value: str, allowed: Sequence[str], *, locator: str = "FORMAT") -> str:
    text = value.strip().split(";")[0].strip().lower()
    if text == "png":
        text = "image/png"
    if text not in allowed:
        raise WmsError(f"{locator} {value!r} is not served; use one of {', '.join(allowed)}",
                       "InvalidFormat", locator)
    return text


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().upper() == "TRUE"


def parse_bgcolor(value: str | None) -> tuple[int, int, int]:
    """``0xRRGGBB`` (default white)."""
    text = (value or "").strip()
    if not text:
        return 255, 255, 255
    digits = text[2:] if text.lower().startswith("0x") else text.lstrip("#")
    if len(digits) != 6:
        raise WmsError(f"BGCOLOR must be 0xRRGGBB, got {value!r}", "InvalidParameterValue",
                       "BGCOLOR")
    try:
        return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    except ValueError:
        raise WmsError(f"BGCOLOR must be 0xRRGGBB, got {value!r}", "InvalidParameterValue",
                       "BGCOLOR") from None


def _day(text: str) -> dt.date:
    try:
        moment = parse_interval(text).start
    except ValueError as err:
        raise WmsError(f"TIME {text!r} is not an ISO 8601 date: {err}", "InvalidDimensionValue",
                       "TIME") from None
    return moment.astimezone(dt.timezone.utc).date()


def parse_time(value: str | None, dates: Sequence[str], default: str | None) -> When:
    """TIME → what to render: a date of the layer (that day), an interval ``start/end[/period]``
    holding at least one date (a cloud-masked composite), or nothing (the layer's default,
    the latest clear date).  ``dates`` are the layer's ISO days."""
    text = (value or "").strip()
    if not text or text.lower() == "current":
        if not default:
            raise WmsError("the layer has no clear date to show by default; give TIME (one of "
                           "the dates of the layer's time dimension)",
                           "MissingDimensionValue", "TIME")
        return When(parse_interval(default), True)
    if "," in text:
        raise WmsError("TIME takes one date or one interval start/end (a composite), not a "
                       "list", "InvalidDimensionValue", "TIME")
    known = sorted(dates)
    if "/" in text:
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise WmsError(f"TIME interval must be start/end, got {text!r}",
                           "InvalidDimensionValue", "TIME")
        start, end = _day(parts[0]), _day(parts[1])
        if start > end:
            raise WmsError(f"TIME interval {text!r} ends before it starts",
                           "InvalidDimensionValue", "TIME")
        inside = [d for d in known if start.isoformat() <= d <= end.isoformat()]
        if not inside:
            raise WmsError(f"no date of the layer between {start} and {end}; dates from "
                           f"{known[0]} to {known[-1]} (see the time dimension)" if known else
                           "the layer has no date", "InvalidDimensionValue", "TIME")
        interval = Interval(parse_interval(start.isoformat()).start,
                            parse_interval(end.isoformat()).end)
        return When(interval, len(inside) == 1)
    day = _day(text).isoformat()
    if day not in known:
        before = [d for d in known if d < day][-1:]
        after = [d for d in known if d > day][:1]
        nearest = " or ".join(before + after)
        raise WmsError(f"no image on {day} for this layer; nearest date(s): {nearest} (all "
                       "dates are in the layer's time dimension)", "InvalidDimensionValue",
                       "TIME")
    return When(parse_interval(day), True)


def parse_point(params: Mapping[str, str], size: tuple[int, int]) -> tuple[int, int]:
    """GetFeatureInfo's I (column) and J (row), inside the map."""
    point = []
    for name, limit in (("I", size[0]), ("J", size[1])):
        text = params.get(name, "").strip()
        if not text:
            raise WmsError(f"parameter {name} is missing", "InvalidPoint", name)
        try:
            number = int(text)
        except ValueError:
            raise WmsError(f"{name} must be a pixel index, got {text!r}", "InvalidPoint",
                           name) from None
        if not 0 <= number < limit:
            raise WmsError(f"{name}={number} is outside the {size[0]}×{size[1]} map",
                           "InvalidPoint", name)
        point.append(number)
    return point[0], point[1]


@dataclass(frozen=True)
class MapRequest:
    """A validated GetMap (and the map part of GetFeatureInfo)."""

    layers: tuple[str, ...]
    styles: tuple[str, ...]
    crs_code: str
    crs: CRS
    bbox: tuple[float, float, float, float]  # x first
    size: tuple[int, int]
    time: str | None
    transparent: bool
    bgcolor: tuple[int, int, int]
    format: str | None
