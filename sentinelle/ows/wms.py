"""WMS 1.3.0 at ``/wms``, beside pygeoapi in the same Flask app, for GIS tools that speak WMS
(QGIS, mviewer, MapStore, GDAL) and INSPIRE view-service consumers.

Operations: ``GetCapabilities`` (layers per area and product, time dimension, styles with
legends, ISO metadata links, INSPIRE extended capabilities, ``LANGUAGE=fre|eng``), ``GetMap``
(PNG/JPEG, ``TRANSPARENT``, ``BGCOLOR``, ``TIME`` = a date or an interval for a composite),
``GetFeatureInfo`` (the value at the clicked pixel, at 10 m: text, JSON, HTML) and
``GetLegendGraphic``.  Every pixel is drawn by :func:`sentinelle.rendering.render_map`, the
renderer OGC API Maps uses (one date on a tile-sized map is read straight from the COGs by
:mod:`sentinelle.catalog.tiles`; an interval makes a composite through the catalog's general
path), and GetFeatureInfo reads through :func:`sentinelle.rendering.read_pixels` the same way;
parameters are checked by the plain functions of
:mod:`sentinelle.ows.params`; domain errors become WMS 1.3.0 service exceptions through one
table (:data:`ERROR_TABLE`).

Register with ``app.register_blueprint(wms.BLUEPRINT)``.
"""

from __future__ import annotations

import html
import io
import json
import logging
import math
import re
import threading

import numpy as np
from flask import Blueprint, Response, g, request
from lxml import etree
from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import Point

from sentinelle.analysis.indices import compute_index, get_index
from sentinelle.analysis.render import rescaled
from sentinelle.catalog.area import CRS84, Area, Grid, _transformer
from sentinelle.catalog.imagery import native_grid
from sentinelle.catalog.presets import VALUE
from sentinelle.catalog.tiles import on_reader_thread
from sentinelle.encode import to_png
from sentinelle.errors import (
    InvalidInput,
    NoData,
    NotFound,
    SentinelleError,
    SourceUnavailable,
    TooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
    most_specific,
)
from sentinelle.ows.capabilities import capabilities
from sentinelle.ows.layers import LEGEND_SIZE, Layer, PixelValue, layer_map, load_config
from sentinelle.ows.params import (
    INFO_FORMATS,
    ISO639_2,
    LEGEND_FORMATS,
    MAP_FORMATS,
    MapRequest,
    WmsError,
    check_service,
    check_version,
    crs_from_code,
    normalise,
    parse_bbox,
    parse_bgcolor,
    parse_bool,
    parse_crs,
    parse_format,
    parse_language,
    parse_layers,
    parse_point,
    parse_size,
    parse_styles,
    parse_time,
    require,
)
from sentinelle.rendering import (
    TRUE_COLOR_BANDS,
    When,
    compute,
    legend_png,
    read_pixels,
    render_map,
)
from sentinelle.settings import Limits

LOGGER = logging.getLogger(__name__)
BLUEPRINT = Blueprint("wms", __name__)
EXCEPTION_MIME = "text/xml"
OGC = "http://www.opengis.net/ogc"
NATIVE_RESOLUTION = 10.0
BLOCK = 60.0  # m, a multiple of every Sentinel-2 resolution

#: Domain errors → (WMS exception code, HTTP status); first match wins.
ERROR_TABLE: tuple[tuple[type[SentinelleError], str | None, int], ...] = (
    (TooLarge, "InvalidParameterValue", 400),
    (InvalidInput, "InvalidParameterValue", 400),
    (NotFound, None, 404),
    (NoData, None, 404),
    (UpstreamTimeout, None, 504),
    (UpstreamUnavailable, None, 503),
    (SourceUnavailable, None, 502),
)


# --- responses --------------------------------------------------------------------------------

def exception_report(message: str, code: str | None = None, locator: str | None = None) -> bytes:
    """A WMS 1.3.0 ``ServiceExceptionReport``."""
    root = etree.Element(f"{{{OGC}}}ServiceExceptionReport", nsmap={
        None: OGC, "xsi": "http://www.w3.org/2001/XMLSchema-instance"}, version="1.3.0")
    root.set("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation",
             f"{OGC} http://schemas.opengis.net/wms/1.3.0/exceptions_1_3_0.xsd")
    node = etree.SubElement(root, f"{{{OGC}}}ServiceException")
    if code:
        node.set("code", code)
    if locator:
        node.set("locator", locator)
    # messages echo the request, whose control characters XML cannot carry (lxml: a 500)
    node.text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "\ufffd", message)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _error_response(err: WmsError) -> Response:
    return Response(exception_report(err.message, err.code, err.locator), status=err.status,
                    mimetype=EXCEPTION_MIME)


def to_wms_error(err: SentinelleError) -> WmsError:
    specific = most_specific(err)  # a 504 re-raised as SourceUnavailable stays a 504
    for cls, code, status in ERROR_TABLE:
        if isinstance(specific, cls):
            return WmsError(str(err), code, None, status)
    return WmsError(str(err), None, None, 502)


def _base_url(config: dict) -> str:
    return str(config["server"]["url"]).rstrip("/")


# --- pixels -------------------------------------------------------------------------------------

def _over(rgba: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """RGB of ``rgba`` composited over a plain background."""
    alpha = rgba[..., 3:4].astype("float32") / 255
    rgb = rgba[..., :3].astype("float32") * alpha + np.array(colour, "float32") * (1 - alpha)
    return np.round(rgb).astype("uint8")


def encode_map(rgba: np.ndarray, fmt: str, transparent: bool,
               bgcolor: tuple[int, int, int]) -> bytes:
    if fmt == "image/png" and transparent:
        return to_png(rgba)
    buffer = io.BytesIO()
    image = Image.fromarray(_over(rgba, bgcolor), "RGB")
    if fmt == "image/jpeg":
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def draw_layer(layer: Layer, bbox, crs, size: tuple[int, int], when: When,
               limits: Limits) -> np.ndarray:
    """RGBA of one layer (fully transparent where the layer has nothing to show)."""
    if layer.preset is not None:  # derived products: classification, change
        from sentinelle.ows import derived as wms_products

        return wms_products.draw(layer, bbox, crs, size, when, limits)
    source = layer.source
    ramp = None if source.product is None else \
        rescaled(source.product.ramp, *source.product.range)
    try:
        return render_map(source.catalog, source.area, bbox, crs, size, index=layer.index,
                          when=when, method=source.composite, max_cloud=source.max_cloud,
                          transparent=True, limits=limits, name=layer.name,
                          values=ramp).rgba
    except NoData:  # WMS 1.3.0 §7.3.3.6: a bbox that misses the layer gives empty content
        return np.zeros((size[1], size[0], 4), dtype="uint8")



def _product_value(layer: Layer, x: float, y: float, crs, when: When,
                   limits: Limits) -> PixelValue:
    """A product's value at the pixel of its own grid under ``(x, y)``."""
    source, name = layer.source, layer.source.product.name
    lon, lat = _transformer(crs, CRS84).transform(x, y)
    empty = PixelValue(layer.name, lon, lat, {name: None}, (), ())
    point = Area(Point(lon, lat).buffer(1e-6, 4))
    if not source.area.geometry.contains(Point(lon, lat)):
        return empty
    scenes = source.catalog.find(point, when.interval)
    if not scenes:
        return empty
    grid = native_grid(scenes, [VALUE], point)
    try:
        data = read_pixels(source.catalog, source.area, point, when, [VALUE], grid,
                           method=source.composite, limits=limits, name=layer.name)
    except NoData:
        return empty
    px, py = _transformer(CRS84, grid.crs).transform(lon, lat)
    col, row = ~data.rio.transform() * (px, py)
    array = np.asarray(compute(data[VALUE]).values, dtype="float64")
    row, col = min(int(row), array.shape[0] - 1), min(int(col), array.shape[1] - 1)
    value = float(array[row, col])
    return PixelValue(layer.name, lon, lat,
                      {name: round(value, 6) if math.isfinite(value) else None},
                      tuple(data.attrs.get("dates", ())), tuple(data.attrs.get("scenes", ())))


def pixel_value(layer: Layer, x: float, y: float, crs, when: When, limits: Limits,
                lang: str = "fr") -> PixelValue:
    """The index (or the true-colour bands' reflectance) of the native 10 m pixel under
    ``(x, y)`` (in ``crs``, x first): the value OGC API Coverages and the ``spectral-index``
    process give for that pixel, cloud-masked like the map; None outside the area or under
    cloud.  Derived layers give their class code and name (in ``lang``)."""
    if layer.preset is not None:
        from sentinelle.ows import derived as wms_products

        return wms_products.pixel_value(layer, x, y, crs, when, limits, lang)
    source = layer.source
    if source.product is not None:
        return _product_value(layer, x, y, crs, when, limits)
    names = [layer.index] if layer.index else list(TRUE_COLOR_BANDS)
    empty = {name: None for name in names}
    lon, lat = _transformer(crs, CRS84).transform(x, y)
    epsg = layer.time.native_epsg
    if epsg is None:
        return PixelValue(layer.name, lon, lat, empty, (), ())
    px, py = _transformer(crs, crs_from_code(f"EPSG:{epsg}")).transform(x, y)
    x0 = math.floor(px / NATIVE_RESOLUTION) * NATIVE_RESOLUTION
    y0 = math.floor(py / NATIVE_RESOLUTION) * NATIVE_RESOLUTION
    centre = Point(x0 + NATIVE_RESOLUTION / 2, y0 + NATIVE_RESOLUTION / 2)
    if not source.area.to_crs(epsg).geometry.contains(centre):
        return PixelValue(layer.name, lon, lat, empty, (), ())
    # read a 60 m block holding the pixel: the catalog's search measures cloud on the 20 m
    # SCL grid, where an area of one 10 m pixel may hold no SCL pixel centre at all
    bx, by = math.floor(px / BLOCK) * BLOCK, math.floor(py / BLOCK) * BLOCK
    block = Area.from_bbox([bx, by, bx + BLOCK, by + BLOCK], epsg)
    bands = get_index(layer.index).bands if layer.index else TRUE_COLOR_BANDS
    grid = Grid.from_area(block, epsg, NATIVE_RESOLUTION)
    try:
        data = read_pixels(source.catalog, source.area, block, when, bands, grid,
                           method=source.composite, limits=limits, name=layer.name)
    except NoData:
        return PixelValue(layer.name, lon, lat, empty, (), ())
    if layer.index:
        arrays = {layer.index: compute(compute_index(data, layer.index)).values}
    else:
        computed = compute(data[list(bands)])
        arrays = {b: computed[b].values for b in bands}
    col, row = ~data.rio.transform() * (centre.x, centre.y)
    values = {}
    for name, array in arrays.items():
        value = float(np.asarray(array, dtype="float64")[int(row), int(col)])
        values[name] = round(value, 6) if math.isfinite(value) else None
    return PixelValue(layer.name, lon, lat, values, tuple(data.attrs.get("dates", ())),
                      tuple(data.attrs.get("scenes", ())))


# --- operations ---------------------------------------------------------------------------------

def map_request(params: dict[str, str], layers: dict[str, Layer], *,
                layer_param: str = "LAYERS", need_format: bool = True) -> MapRequest:
    """The validated map part of GetMap / GetFeatureInfo."""
    names = parse_layers(require(params, layer_param), layers)
    styles = parse_styles(params.get("STYLES"), names,
                          {name: [layers[name].style] for name in names})
    allowed = [c for c in layers[names[0]].crs
               if all(c in layers[n].crs for n in names[1:])]
    if "CRS" not in params and "SRS" in params:  # WMS 1.1 clients
        params = {**params, "CRS": params["SRS"]}
    code, crs = parse_crs(require(params, "CRS"), allowed)
    bbox = parse_bbox(require(params, "BBOX"), crs)
    size = parse_size(params)
    fmt = parse_format(require(params, "FORMAT"), MAP_FORMATS) if need_format else None
    return MapRequest(tuple(names), tuple(styles), code, crs, bbox, size, params.get("TIME"),
                      parse_bool(params.get("TRANSPARENT")), parse_bgcolor(params.get("BGCOLOR")),
                      fmt)


def _when(layer: Layer, time: str | None) -> When:
    return parse_time(time, layer.time.dates, layer.time.default)


def get_map(params: dict[str, str], layers: dict[str, Layer]) -> Response:
    req = map_request(params, layers)
    whens = [_when(layers[name], req.time) for name in req.layers]
    limits = Limits.from_env()
    canvas = None
    for name, when in zip(req.layers, whens):
        rgba = draw_layer(layers[name], req.bbox, req.crs, req.size, when, limits)
        image = Image.fromarray(rgba, "RGBA")
        canvas = image if canvas is None else Image.alpha_composite(canvas, image)
    body = encode_map(np.asarray(canvas), req.format, req.transparent, req.bgcolor)
    return Response(body, mimetype=req.format)


def _shown(value, lang: str) -> str:
    """A GetFeatureInfo value as text: numbers with 6 decimals, codes and names as they are."""
    if value is None:
        return "sans donnée" if lang == "fr" else "no data"
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def _info_text(values: list[PixelValue], lang: str) -> str:
    lines = []
    for item in values:
        lines.append(f"{'Couche' if lang == 'fr' else 'Layer'} '{item.layer}' "
                     f"(lon {item.lon:.6f}, lat {item.lat:.6f})")
        for name, value in item.values.items():
            lines.append(f"  {name} = {_shown(value, lang)}")
        if item.dates:
            lines.append(f"  dates: {', '.join(item.dates)}")
    return "\n".join(lines) + "\n"


def _info_html(values: list[PixelValue], lang: str) -> str:
    rows = []
    for item in values:
        rows.append(f"<h2>{html.escape(item.layer)}</h2><table>"
                    f"<tr><th>lon</th><td>{item.lon:.6f}</td></tr>"
                    f"<tr><th>lat</th><td>{item.lat:.6f}</td></tr>")
        for name, value in item.values.items():
            rows.append(f"<tr><th>{html.escape(name)}</th>"
                        f"<td>{html.escape(_shown(value, lang))}</td></tr>")
        rows.append(f"<tr><th>dates</th><td>{html.escape(', '.join(item.dates))}</td></tr>"
                    "</table>")
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>GetFeatureInfo</title></head><body>{''.join(rows)}</body></html>")


def _info_json(values: list[PixelValue]) -> str:
    features = [{
        "type": "Feature",
        "id": item.layer,
        "geometry": {"type": "Point", "coordinates": [round(item.lon, 7), round(item.lat, 7)]},
        "properties": {"layer": item.layer, **item.values, "dates": list(item.dates),
                       "scenes": list(item.scenes)},
    } for item in values]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)


def get_feature_info(params: dict[str, str], layers: dict[str, Layer], lang: str) -> Response:
    req = map_request(params, layers, need_format=False)
    queried = parse_layers(require(params, "QUERY_LAYERS"), req.layers, locator="QUERY_LAYERS")
    info_format = parse_format(require(params, "INFO_FORMAT"), INFO_FORMATS,
                               locator="INFO_FORMAT")
    i, j = parse_point(params, req.size)
    minx, miny, maxx, maxy = req.bbox
    x = minx + (i + 0.5) * (maxx - minx) / req.size[0]
    y = maxy - (j + 0.5) * (maxy - miny) / req.size[1]
    limits = Limits.from_env()
    values = [pixel_value(layers[name], x, y, req.crs, _when(layers[name], req.time), limits,
                          lang) for name in queried]
    if info_format == "application/json":
        return Response(_info_json(values), mimetype="application/json")
    if info_format == "text/html":
        return Response(_info_html(values, lang), mimetype="text/html")
    return Response(_info_text(values, lang), mimetype="text/plain")


def true_color_legend(lang: str) -> bytes:
    """A small legend for the true-colour layers: three swatches, the bands and the stretch."""
    width, height = LEGEND_SIZE
    canvas = Image.new("RGBA", (width, height), (255, 255, 255, 230))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    # PIL's built-in font has no accents: keep the labels ASCII
    draw.text((14, 3), "Sentinel-2 L2A, " + ("couleurs naturelles" if lang == "fr"
                                              else "true colour"), fill="black", font=font)
    for k, (label, colour) in enumerate((("R = B04", (220, 40, 40)), ("G = B03", (40, 160, 40)),
                                         ("B = B02", (40, 70, 220)))):
        left = 14 + k * 95
        draw.rectangle([left, 22, left + 16, 38], fill=colour, outline="black")
        draw.text((left + 22, 26), label, fill="black", font=font)
    draw.text((14, 46), "0 - 0.25 " + ("reflectance" if lang == "en" else "reflectance"),
              fill="black", font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def get_legend_graphic(params: dict[str, str], layers: dict[str, Layer], lang: str) -> Response:
    name = parse_layers(require(params, "LAYER"), layers, locator="LAYER")[0]
    layer = layers[name]
    parse_styles(params.get("STYLE"), [name], {name: [layer.style]})
    parse_format(params.get("FORMAT") or "image/png", LEGEND_FORMATS)
    if layer.preset is not None:
        from sentinelle.ows import derived as wms_products

        body = wms_products.legend_png(layer, lang)
    elif layer.source.product is not None:
        product = layer.source.product
        body = legend_png(ramp=rescaled(product.ramp, *product.range),
                          title=f"{product.title[lang]} ({product.unit})")
    else:
        body = legend_png(layer.index) if layer.index else true_color_legend(lang)
    return Response(body, mimetype="image/png")


#: Capabilities documents already written, per language, URL, configuration and layer dates:
#: a document reprojects every layer's box to every CRS (hundreds of transforms), which under
#: load queued behind the threads drawing tiles (p95 of seconds in benchmarks/loadtest.py).
_CAPABILITIES: dict[tuple, tuple[dict, bytes]] = {}
_CAPABILITIES_LOCK = threading.Lock()


def get_capabilities(layers: dict[str, Layer], config: dict, lang: str) -> Response:
    base = _base_url(config)
    key = (lang, base, id(config), tuple((layer.name, layer.time) for layer in layers.values()))
    with _CAPABILITIES_LOCK:
        cached = _CAPABILITIES.get(key)
    if cached is None or cached[0] is not config:
        cached = (config, capabilities(config, list(layers.values()), base, lang))
        with _CAPABILITIES_LOCK:
            if len(_CAPABILITIES) >= 16:
                _CAPABILITIES.clear()
            _CAPABILITIES[key] = cached
    return Response(cached[1], mimetype="text/xml")


OPERATIONS = ("GetCapabilities", "GetMap", "GetFeatureInfo", "GetLegendGraphic")


@on_reader_thread
def dispatch(params: dict[str, str], lang: str) -> Response:
    """One WMS request → a response (raises :class:`WmsError` / domain errors).

    Runs on a long-lived reader thread (:func:`~sentinelle.catalog.tiles.on_reader_thread`):
    pyproj rebuilds each transformer once per thread (up to 0.4 s for some national CRSs),
    which a server starting a thread per request (Flask's) would pay on every request — 3 to
    5 s per GetCapabilities."""
    operation = params.get("REQUEST", "").strip()
    if not operation:
        raise WmsError("parameter REQUEST is missing (GetCapabilities, GetMap, GetFeatureInfo "
                       "or GetLegendGraphic)", "MissingParameterValue", "REQUEST")
    canonical = {op.lower(): op for op in OPERATIONS}.get(operation.lower())
    if canonical is None:
        raise WmsError(f"operation {operation!r} is not supported; use one of "
                       f"{', '.join(OPERATIONS)}", "OperationNotSupported", "REQUEST")
    check_service(params)
    check_version(params, canonical)
    config = load_config()
    layers = layer_map(config)
    if canonical == "GetCapabilities":
        return get_capabilities(layers, config, lang)
    if canonical == "GetMap":
        return get_map(params, layers)
    if canonical == "GetFeatureInfo":
        return get_feature_info(params, layers, lang)
    return get_legend_graphic(params, layers, lang)


@BLUEPRINT.route("/wms", methods=["GET", "HEAD"])
def wms_endpoint() -> Response:
    params = normalise(request.args)
    lang = parse_language(params.get("LANGUAGE"))
    g.content_language = lang
    try:
        return dispatch(params, lang)
    except WmsError as err:
        return _error_response(err)
    except SentinelleError as err:
        return _error_response(to_wms_error(err))
    except Exception as err:  # noqa: BLE001 - a bug must still answer in WMS terms
        LOGGER.exception("WMS request failed: %s", request.query_string)
        return Response(exception_report(f"internal error: {type(err).__name__}"),
                        status=500, mimetype=EXCEPTION_MIME)


@BLUEPRINT.after_request
def content_language(response: Response) -> Response:
    """``Content-Language`` on every WMS answer (the language of titles and messages)."""
    response.headers.setdefault("Content-Language", getattr(g, "content_language", "fr"))
    return response


__all__ = ["BLUEPRINT", "ISO639_2", "dispatch", "exception_report", "pixel_value"]
