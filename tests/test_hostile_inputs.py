"""Hostile inputs, as a client would send them, against a real server process: each gets a 4xx
whose message names the problem (and the limit, when there is one), never a 500 or a hang.

Surfaces: Features and Records items, Coverages, Maps, the WMS, the four processes, jobs,
metadata, downloads, licences, vendor files and the STAC static files.  Most run against the
shared ``server``; limits are tried on a second server started with small ones (pixels, dates,
zones, body size) over a copy of the sample whose catalog folder holds a symbolic link to a file
outside it.
"""

from __future__ import annotations

import html
import http.client
import io
import json
import re
import time
import urllib.parse
import uuid

import numpy as np
import pyogrio
import pytest
import requests
from PIL import Image

from tests.conftest import start_server

TIMEOUT = 60
PARCELS = "/collections/bretagne-parcels/items"
RECORDS = "/collections/sentinel-2-l2a/items"
COVERAGE = "/collections/bretagne-ndvi/coverage"
MAP = "/collections/bretagne-ndvi/map"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
SMALL = [-1.60, 48.09, -1.59, 48.10]  # 10 m pixels: about 75 × 112
BOWTIE = {"type": "Polygon", "coordinates": [[[-1.6, 48.09], [-1.59, 48.10], [-1.59, 48.09],
                                              [-1.6, 48.10], [-1.6, 48.09]]]}
LIMITS = {"SENTINELLE_MAX_PIXELS": "200000", "SENTINELLE_MAX_DATES": "2",
          "SENTINELLE_MAX_ZONES": "5", "SENTINELLE_MAX_BODY_BYTES": "100000"}


# --- helpers -----------------------------------------------------------------------------------

def refused(response: requests.Response | tuple, status: int, *words: str) -> str:
    """Assert an OGC exception (JSON ``code`` + ``description``) with ``status`` whose
    description holds every word (case-insensitive); returns the description."""
    code, content_type, body = (response if isinstance(response, tuple) else
                                (response.status_code, response.headers.get("Content-Type", ""),
                                 response.text))
    assert code == status, (code, body[:500])
    assert content_type.startswith("application/json"), (content_type, body[:300])
    document = json.loads(body)
    assert document.get("code"), document
    message = document["description"]
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    return message


def wms_refused(response: requests.Response, status: int, *words: str) -> str:
    """Assert a WMS 1.3.0 ServiceExceptionReport holding every word."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("text/xml"), response.headers
    assert "ServiceExceptionReport" in response.text
    message = html.unescape(re.search(r"<ServiceException[^>]*>(.*?)</ServiceException>",
                                      response.text, re.S).group(1))
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    return message


def get(server, path: str, **params) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params or None, timeout=TIMEOUT)


def execute(server, process: str, inputs: dict | None = None, *, outputs=None,
            data: bytes | None = None) -> requests.Response:
    url = f"{server.url}/processes/{process}/execution"
    if data is not None:
        return requests.post(url, data=data, headers={"Content-Type": "application/json"},
                             timeout=TIMEOUT)
    body = {"inputs": inputs} if outputs is None else {"inputs": inputs, "outputs": outputs}
    return requests.post(url, json=body, timeout=TIMEOUT)


def raw(server, path: str, method: str = "GET") -> tuple[int, str, str]:
    """A request with the path sent byte for byte (requests would remove ``..`` segments)."""
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return (response.status, response.getheader("Content-Type") or "",
                response.read().decode("utf-8", "replace"))
    finally:
        connection.close()


#: each process with inputs that are fine except for the area
PROCESSES = {
    "spectral-index": {"datetime": "2024-05-17", "format": "json"},
    "change-detection": {"before": "2024-05-17", "after": "2024-06-11"},
    "classification": {"datetime": "2024-06-11"},
}


# --- the server with small limits ---------------------------------------------------------------

@pytest.fixture(scope="module")
def limited(sample_dir, tmp_path_factory):
    """A server with small limits over a copy of the sample made of links, whose catalog
    folder also holds ``outside.json`` → a file outside the data folder."""
    root = tmp_path_factory.mktemp("hostile")
    secret = root / "secret.json"
    secret.write_text('{"secret": "TOP-SECRET"}')
    data = root / "data"
    (data / "catalog").mkdir(parents=True)
    for entry in (sample_dir / "catalog").iterdir():
        (data / "catalog" / entry.name).symlink_to(entry)
    (data / "catalog" / "outside.json").symlink_to(secret)
    (data / "catalog" / "inside.json").write_text('{"inside": true}')
    for name in ("vectors", "truth"):
        (data / name).symlink_to(sample_dir / name)
    srv = start_server(data, root, extra_env=LIMITS)
    yield srv
    srv.stop(15)


# --- Features items ---------------------------------------------------------------------------

@pytest.mark.parametrize("params, status, words", [
    ({"bbox": "nan,nan,nan,nan"}, 400, ["finite"]),
    ({"bbox": "-inf,48,inf,49"}, 400, ["finite"]),
    ({"bbox": "-1.6,95,-1.5,100"}, 400, ["out of range", "[-90, 90]"]),
    ({"bbox": "-200,48,-1.5,48.1"}, 400, ["out of range", "[-180, 180]"]),
    ({"bbox": "-1.5,48.0,-1.6,48.1"}, 400, ["antimeridian"]),
    ({"bbox": "-1.6,48.1,-1.5,48.0"}, 400, ["miny"]),
    ({"bbox": "1,2,3"}, 400, ["4 values"]),
    ({"bbox": "a,b,c,d"}, 400, ["numbers"]),
    # EPSG:4326 is latitude first: a longitude of -100 in the latitude slot
    ({"bbox": "-100,48.08,-95,48.12", "bbox-crs": EPSG4326}, 400, ["EPSG:4326 order"]),
    ({"bbox": "-1.6,48,-1.5,48.1", "bbox-crs": "EPSG:9999"}, 400, ["not supported"]),
    ({"crs": "http://www.opengis.net/def/crs/EPSG/0/9999"}, 400, ["not supported", "CRS84"]),
    ({"crs": "../../etc/passwd"}, 400, ["not supported"]),
    ({"limit": "-1"}, 400, ["limit", "positive"]),
    ({"limit": "0"}, 400, ["limit", "positive"]),
    ({"limit": "1e12"}, 400, ["limit", "integer"]),
    ({"offset": "-5"}, 400, ["offset", "positive or zero"]),
    ({"sortby": "fid"}, 400, ["sort"]),
    ({"sortby": "-geometry"}, 400, ["sort"]),
    ({"properties": "fid"}, 400, ["unknown properties"]),
    ({"datetime": "garbage"}, 400, ["RFC 3339"]),
    ({"datetime": "0000-01-01"}, 400, ["RFC 3339"]),
    ({"datetime": "2024-06-01/2024-01-01"}, 400, ["ends before"]),
    ({"f": "../../etc/passwd"}, 400, ["format"]),
])
def test_features_bad_parameters(server, params, status, words):
    refused(get(server, PARCELS, **params), status, *words)


def test_features_axis_order(server):
    """CRS84 is longitude first, EPSG:4326 latitude first: the same box either way gives the
    same parcels; the box with its axes swapped lands elsewhere and matches nothing."""
    lonlat = get(server, PARCELS, bbox="-1.60,48.08,-1.55,48.12", limit=1000).json()
    latlon = get(server, PARCELS, bbox="48.08,-1.60,48.12,-1.55", limit=1000,
                 **{"bbox-crs": EPSG4326}).json()
    assert lonlat["numberMatched"] > 0
    assert {f["id"] for f in lonlat["features"]} == {f["id"] for f in latlon["features"]}
    swapped = get(server, PARCELS, bbox="-1.60,48.08,-1.55,48.12", **{"bbox-crs": EPSG4326})
    assert swapped.status_code == 200 and swapped.json()["numberMatched"] == 0


def test_features_huge_limit_and_offset_are_clamped(server, sample_dir):
    """``limit=10^12`` is cut to the server's max_items (1,000); a huge offset is an empty
    page, not an error."""
    total = pyogrio.read_info(sample_dir / "vectors" / "bretagne-parcels.gpkg")["features"]
    assert total > 1000
    page = get(server, PARCELS, limit=10**12, skipGeometry="true")
    assert page.status_code == 200
    body = page.json()
    assert body["numberMatched"] == total
    assert body["numberReturned"] == len(body["features"]) == min(1000, total)
    far = get(server, PARCELS, offset=10**12)
    assert far.status_code == 200 and far.json()["features"] == []


# --- CQL2 ---------------------------------------------------------------------------------------

QUERYABLES = "queryable properties: area_m2, commune, id, landcover, numero, section, geometry"


@pytest.mark.parametrize("cql, words", [
    ("fid = 1", ["unknown property fid", QUERYABLES]),
    ("geom IS NULL", ["unknown property geom", QUERYABLES]),
    ("rowid > 0", ["unknown property rowid"]),
    ("sqlite_version() = '3'", ["function sqlite_version cannot be used", QUERYABLES]),
    ("load_extension('mod_spatialite') = 1", ["function load_extension"]),
    ("__import__('os') IS NULL", ["function __import__"]),
    ("\"id\"; DROP TABLE parcels", ["not valid CQL2 text", "column 5", QUERYABLES]),
    ("id = '1'; DROP TABLE parcels --", ["not valid CQL2 text", QUERYABLES]),
    ("id IN (SELECT id FROM gpkg_contents)", ["not valid CQL2 text", QUERYABLES]),
    ("S_INTERSECTS(geometry, POINT(-1.6 48.1))' OR '1'='1", ["not valid CQL2 text"]),
    ("area_m2 / 0 = 1", ["cannot be evaluated", "division by zero"]),
    (" OR ".join(["id = 'x'"] * 200), ["nests", "more than 60", "IN ("]),
])
def test_cql2_text_reaches_only_published_properties(server, cql, words):
    refused(get(server, PARCELS, filter=cql), 400, *words)


@pytest.mark.parametrize("filter_json", [
    {"op": "=", "args": [{"property": "fid"}, 1]},
    {"op": "=", "args": [{"function": {"name": "sqlite_version", "args": []}}, "3"]},
    "[" * 10_000 + "]" * 10_000,
])
def test_cql2_json_in_the_query_string_is_refused(server, filter_json):
    text = filter_json if isinstance(filter_json, str) else json.dumps(filter_json)
    refused(get(server, PARCELS, filter=text, **{"filter-lang": "cql2-json"}), 400,
            "CQL2 JSON is read from the body")


def test_filter_crs_must_be_a_crs(server):
    refused(get(server, PARCELS, filter="INTERSECTS(geometry, POINT(-1.6 48.1))",
                **{"filter-crs": "EPSG:9999"}), 400, "filter-crs", "CRS URI")


def test_cql2_function_cannot_run_code_on_the_server(server, tmp_path):
    """pygeofilter's native backend writes function names into code it ``eval``s: without the
    check, this filter would create the file."""
    marker = tmp_path / "pwned"
    cql = f"exec('open(\"{marker}\", \"w\").write(\"x\")') IS NULL"
    for path in (PARCELS, RECORDS):
        refused(get(server, path, filter=cql), 400, "function exec cannot be used")
    response = execute(server, "zonal-statistics", {
        "zones": {"collection": "bretagne-parcels", "filter": cql}, "datetime": "2024-05-17"})
    refused(response, 400, "zones:", "function exec")
    assert not marker.exists()


def test_cql2_like_is_linear_time(server, sample_dir):
    """A LIKE pattern of 5,000 '%' used to backtrack for minutes holding the GIL (the whole
    server stopped); it now answers at once, and LIKE still matches what it should."""
    started = time.monotonic()
    slow = get(server, PARCELS, filter="id LIKE '" + "%" * 5000 + "x'")
    assert slow.status_code == 200 and slow.json()["numberMatched"] == 0
    nested = get(server, PARCELS, filter="id LIKE '" + "%a" * 40 + "%b'")
    assert nested.status_code == 200
    assert time.monotonic() - started < 10
    # the matcher against the GeoPackage read directly
    meta, _, _, fields = pyogrio.raw.read(sample_dir / "vectors" / "bretagne-parcels.gpkg",
                                          read_geometry=False)
    ids = [str(v) for v in fields[list(meta["fields"]).index("id")]]
    for pattern, regex in [("35051%", r"35051.*"), ("%AB00_7", r".*AB00.7"),
                           ("3505_000%1", r"3505.000.*1"), ("%a%", r".*a.*")]:
        found = get(server, PARCELS, filter=f"id LIKE '{pattern}'", limit=1,
                    skipGeometry="true").json()["numberMatched"]
        assert found == sum(bool(re.fullmatch(regex, i)) for i in ids), pattern
    assert get(server, PARCELS, filter="id LIKE '35051%'").json()["numberMatched"] > 0


# --- Records ------------------------------------------------------------------------------------

@pytest.mark.parametrize("params, words", [
    # the extent is the catalog's, first to last scene (it follows new scenes)
    ({"datetime": "0001-01-01"}, ["outside the temporal extent", "2024-01-10T14:03:41"]),
    ({"datetime": "9999-12-31/.."}, ["outside the temporal extent", "2024-11-25T14:04:44"]),
    ({"datetime": "garbage"}, ["garbage"]),
    ({"bbox": "nan,1,2,3"}, ["finite"]),
    ({"bbox": "-1.6,95,-1.5,100"}, ["[-90, 90]"]),
    ({"offset": "-1"}, ["offset"]),
    ({"filter": "fid = 1"}, ["unknown property fid", "queryable properties"]),
    ({"filter": "id = 'x' OR 1=1; --"}, ["not valid CQL2 text", "eo:cloud_cover"]),
    ({"filter": "sqlite_version() = '3'"}, ["function sqlite_version"]),
    ({"sortby": "fid"}, ["sort"]),
])
def test_records_bad_parameters(server, params, words):
    refused(get(server, RECORDS, **params), 400, *words)


def test_records_huge_limit_is_clamped(server):
    body = get(server, RECORDS, limit=10**12).json()
    assert body["numberReturned"] == len(body["features"]) == min(1000, body["numberMatched"])


# --- Coverages and maps -------------------------------------------------------------------------

@pytest.mark.parametrize("params, status, words", [
    ({"bbox": "nan,48,1,49"}, 400, ["finite"]),
    ({"bbox": "-1.6,95,-1.5,100"}, 400, ["[-180, -90, 180, 90]"]),
    ({"bbox": "-1.6,48.08,-1.6,48.08"}, 400, ["min < max"]),
    # lon/lat swapped: lands in the Indian Ocean, not on the collection
    ({"bbox": "48.08,-1.6,48.12,-1.55"}, 400, ["does not meet the area", "48.0542"]),
    ({"bbox": "-1.6,48.1,-1.59,48.11", "bbox-crs": "EPSG:9999"}, 400, ["unknown CRS"]),
    ({"subset": "lat(-90:90),lon(-180:180)"}, 400, ["axis"]),
    ({"subset": "x(0:1e12)"}, 400, ["both x"]),
    ({"datetime": "0001-01-01"}, 404, ["nearest date", "2024-01-18"]),
    ({"datetime": "9999-12-31"}, 404, ["nearest date", "2024-11-13"]),
    ({"datetime": "garbage"}, 400, ["RFC 3339"]),
    ({"scale-size": "x(100000000),y(100000000)"}, 400, ["scale-size", "native resolution"]),
    ({"width": "100000000", "f": "GTiff"}, 400, ["width", "native resolution"]),
    ({"scale-factor": "1e9"}, 400, ["scale-factor"]),
    ({"properties": "fid"}, 400, ["field"]),
    ({}, 413, ["250,000 values", "1002×1002", "f=GTiff"]),  # the whole area as CoverageJSON
])
def test_coverage_bad_parameters(server, params, status, words):
    refused(get(server, COVERAGE, **params), status, *words)


def test_coverage_planet_bbox_is_the_collection(server):
    """A bbox of the whole planet is cut to the collection's area (it was a 400 saying the
    bbox does not meet the area): the same GeoTIFF grid as no bbox at all."""
    import rasterio

    def grid(**params):
        response = get(server, COVERAGE, f="GTiff", datetime="2024-05-17", **params)
        assert response.status_code == 200, response.text[:300]
        with rasterio.open(io.BytesIO(response.content)) as dataset:
            return dataset.width, dataset.height, tuple(dataset.transform)

    assert grid(bbox="-180,-90,180,90") == grid()


@pytest.mark.parametrize("params, status, words", [
    ({"bbox": "nan,1,2,3"}, 400, ["finite"]),
    ({"bbox": "-1.6,95,-1.5,100"}, 400, ["[-180, -90, 180, 90]"]),
    ({"width": "100000", "height": "100000"}, 413, ["4096", "100000×100000"]),
    ({"width": "0", "height": "0"}, 400, ["positive"]),
    ({"width": "-5", "height": "10"}, 400, ["positive"]),
    ({"width": "abc"}, 400, ["width"]),
    ({"datetime": "0001-01-01"}, 404, ["nearest date"]),
    ({"datetime": "9999-12-31"}, 404, ["nearest date"]),
    ({"datetime": "garbage"}, 400, ["RFC 3339"]),
    ({"bbox-crs": "EPSG:9999"}, 400, ["bbox-crs", "CRS URI"]),
])
def test_map_bad_parameters(server, params, status, words):
    refused(get(server, MAP, **params), status, *words)


# --- WMS ----------------------------------------------------------------------------------------

WMS = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "bretagne:NDVI",
       "STYLES": "", "FORMAT": "image/png", "CRS": "EPSG:4326",
       "BBOX": "48.08,-1.6,48.12,-1.55", "WIDTH": "256", "HEIGHT": "256",
       "TRANSPARENT": "TRUE"}


@pytest.mark.parametrize("params, words", [
    ({"WIDTH": "100000", "HEIGHT": "100000"}, ["WIDTH", "4096"]),
    ({"WIDTH": "99999999999999999999", "HEIGHT": "1"}, ["WIDTH", "4096"]),
    ({"WIDTH": "0", "HEIGHT": "0"}, ["WIDTH"]),
    ({"TIME": "0001-01-01"}, ["nearest date", "2024-01-18"]),
    ({"TIME": "9999-12-31"}, ["nearest date", "2024-11-13"]),
    ({"TIME": "garbage"}, ["ISO 8601"]),
    ({"BBOX": "nan,nan,nan,nan"}, ["finite"]),
    ({"BBOX": "95,-1.6,100,-1.5"}, ["BBOX"]),
    ({"BBOX": "48.12,-1.55,48.08,-1.6"}, ["min < max", "minlat,minlon"]),
    ({"BBOX": "1,2,3"}, ["BBOX"]),
    ({"LAYERS": "../../etc/passwd"}, ["no layer"]),
])
def test_wms_bad_parameters(server, params, words):
    wms_refused(get(server, "/wms", **{**WMS, **params}), 400, *words)


def test_wms_axis_order(server):
    """WMS 1.3.0 EPSG:4326 is latitude first, CRS:84 longitude first: both boxes draw the
    area; the lon/lat box sent as EPSG:4326 lands elsewhere and is fully transparent."""
    def alpha(**params):
        response = get(server, "/wms", **{**WMS, **params})
        assert response.status_code == 200, response.text[:300]
        return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))[..., 3]

    assert (alpha() > 0).mean() > 0.5
    assert (alpha(CRS="CRS:84", BBOX="-1.6,48.08,-1.55,48.12") > 0).mean() > 0.5
    assert (alpha(BBOX="-1.6,48.08,-1.55,48.12") == 0).all()


def test_wms_huge_legend_and_feature_info(server):
    legend = get(server, "/wms", SERVICE="WMS", VERSION="1.3.0", REQUEST="GetLegendGraphic",
                 LAYER="bretagne:NDVI", FORMAT="image/png", WIDTH="100000", HEIGHT="100000")
    assert legend.status_code == 200  # the legend keeps its own size
    assert max(Image.open(io.BytesIO(legend.content)).size) <= 1000
    info = get(server, "/wms", **{**WMS, "REQUEST": "GetFeatureInfo",
                                  "QUERY_LAYERS": "bretagne:NDVI", "INFO_FORMAT": "text/plain",
                                  "WIDTH": "100000", "HEIGHT": "100000", "I": "99999",
                                  "J": "99999"})
    wms_refused(info, 400, "WIDTH", "4096")


# --- processes: areas ---------------------------------------------------------------------------

AREA_CASES = [
    ([-180, -90, 180, 90], 413, ["area:", "px", "100,000,000"]),
    ([-1.6, 95, -1.5, 100], 400, ["area:", "[-180, -90, 180, 90]"]),
    ([-1.59, 48.10, -1.60, 48.09], 400, ["area:", "min < max"]),
    ([-1.6, 48.09, -1.6, 48.09], 400, ["area:", "min < max"]),
    (BOWTIE, 400, ["area:", "not valid", "Self-intersection", "not repaired"]),
    ({"type": "Feature", "properties": {}, "geometry": BOWTIE}, 400, ["Self-intersection"]),
    ({"type": "Polygon", "coordinates": [[[-1.6, 48.09], [-1.59, 48.09], [-1.58, 48.09],
                                          [-1.6, 48.09]]]}, 400, ["area:", "not valid"]),
    ({"type": "Polygon", "coordinates": [[[-1.6, 95], [-1.59, 95], [-1.59, 96], [-1.6, 95]]]},
     400, ["area:", "out of range", "latitude within [-90, 90]"]),
    ({"type": "Polygon", "coordinates": []}, 400, ["area:", "empty"]),
    ({"type": "Polygon", "coordinates": [[[-1.6, 48.09], [-1.59, 48.10]]]}, 400,
     ["area:", "not a valid GeoJSON geometry"]),
    ({"type": "Polygon", "coordinates": [["a", "b"]]}, 400, ["area:"]),
    ({"type": "Point", "coordinates": [-1.6, 48.09]}, 400, ["area:"]),
    ({"bbox": SMALL, "crs": "EPSG:9999"}, 400, ["area:", "unknown CRS"]),
    ({"collection": "../../etc", "id": "passwd"}, 400,
     ["area:", "no feature collection", "bretagne-communes"]),
    ({"collection": "bretagne-communes", "id": "../../x"}, 404, ["area:", "no feature"]),
]


@pytest.mark.parametrize("process", list(PROCESSES))
def test_process_area_is_checked_before_any_read(server, process):
    for area, status, words in AREA_CASES:
        refused(execute(server, process, {"area": area, **PROCESSES[process]}), status, *words)


@pytest.mark.parametrize("text", [
    '[NaN, 48.09, -1.59, 48.10]', '[-Infinity, 48.09, Infinity, 48.10]',
    '[-1e400, 48.09, 1e400, 48.10]',
])
def test_process_non_finite_bbox(server, text):
    body = '{"inputs": {"area": %s, "datetime": "2024-05-17"}}' % text
    refused(execute(server, "spectral-index", data=body.encode()), 400, "area:", "finite")


def test_process_swapped_lonlat_finds_no_scene(server):
    """Process areas are x/y (longitude first) in every CRS, EPSG:4326 included, as in
    GeoJSON: a latitude/longitude box lands near the equator, outside every territory."""
    for area in ([48.09, -1.60, 48.10, -1.59], {"bbox": [48.09, -1.60, 48.10, -1.59],
                                                  "crs": "EPSG:4326"}):
        refused(execute(server, "spectral-index", {"area": area, "datetime": "2024-05-17"}),
                404, "the area lies outside every territory")
    ok = execute(server, "spectral-index", {"area": {"bbox": SMALL, "crs": "EPSG:4326"},
                                            "datetime": "2024-05-17", "format": "json"})
    assert ok.status_code == 200, ok.text[:300]


@pytest.mark.parametrize("process, inputs, status, words", [
    ("spectral-index", {"datetime": "0001-01-01"}, 404, ["no Sentinel-2 scene", "0001-01-01"]),
    ("spectral-index", {"datetime": "9999-12-31"}, 404, ["no Sentinel-2 scene"]),
    ("spectral-index", {"datetime": "garbage"}, 400, ["datetime:", "RFC 3339"]),
    ("spectral-index", {"datetime": "2024-13-45"}, 400, ["datetime:"]),
    ("change-detection", {"before": "0001-01-01", "after": "9999-01-01"}, 404,
     ["before:", "no Sentinel-2 scene"]),
    ("change-detection", {"before": "x", "after": "y"}, 400, ["before:", "RFC 3339"]),
    ("classification", {"datetime": "9999-06-11"}, 404, ["no Sentinel-2 scene"]),
    ("spectral-index", {"datetime": "2024-05-17", "index": "../../etc/passwd"}, 400,
     ["index:", "is not one of"]),
    ("spectral-index", {"datetime": "2024-05-17", "crs": "/etc/passwd"}, 400,
     ["crs:", "unknown CRS"]),
    ("spectral-index", {"datetime": "2024-05-17", "crs": "EPSG:9999"}, 400, ["crs:"]),
    ("spectral-index", {"datetime": "2024-05-17", "resolution": 1e-9}, 413,
     ["px", "100,000,000"]),
    ("spectral-index", {"datetime": "2024-05-17", "resolution": -10}, 400, ["resolution"]),
    ("spectral-index", {"datetime": "2024-05-17", "max_cloud": 1e308}, 400, ["max_cloud"]),
    ("classification", {"datetime": "2024-06-11", "n_classes": 10**9}, 400, ["n_classes"]),
])
def test_process_other_inputs(server, process, inputs, status, words):
    base = {"area": SMALL, **({"before": "2024-05-17", "after": "2024-06-11"}
                              if process == "change-detection" else {})}
    refused(execute(server, process, {**base, **inputs}), status, *words)


def test_process_huge_string_is_not_echoed_whole(server):
    response = execute(server, "spectral-index", {"area": SMALL, "datetime": "2024-05-17",
                                                  "crs": "x" * 100_000})
    refused(response, 400, "crs:")
    assert len(response.content) < 3000


@pytest.mark.parametrize("process, inputs", [
    ("spectral-index", {"area": SMALL, "datetime": "2024-05-17"}),
    ("zonal-statistics", {"zones": {"collection": "bretagne-parcels",
                                    "filter": "commune = '35051'"}, "datetime": "2024-05-17"}),
    ("change-detection", {"area": SMALL, "before": "2024-05-17", "after": "2024-06-11"}),
    ("classification", {"area": SMALL, "datetime": "2024-06-11"}),
])
def test_process_output_names_are_checked(server, process, inputs):
    for name in ("../../etc/passwd", "/tmp/x", "result\x00"):
        refused(execute(server, process, inputs, outputs={name: {}}), 400, "unknown output")


# --- processes: zones ---------------------------------------------------------------------------

def zones_of(*geometries) -> dict:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": g} for g in geometries]}


@pytest.mark.parametrize("zones, status, words", [
    (zones_of({"type": "Polygon", "coordinates": [[[-1.6, 95], [-1.59, 95], [-1.59, 96],
                                                   [-1.6, 95]]]}),
     400, ["zones:", "out of range", "[-90, 90]"]),
    (zones_of(None), 400, ["zones:", "no zone has a usable polygon"]),
    ({"type": "FeatureCollection", "features": [1, "a", None]}, 400, ["zones:", "zone 0"]),
    ({"type": "FeatureCollection", "features": []}, 400, ["zones:", "no feature"]),
    (zones_of({"type": "Polygon", "coordinates": [[[-10, 40], [10, 40], [10, 60], [-10, 60],
                                                   [-10, 40]]]}),
     413, ["pixels", "100,000,000"]),
    ({"collection": "../../../etc/passwd"}, 400, ["zones:", "no feature collection"]),
    ({"collection": "sentinel-2-l2a"}, 400, ["zones:", "no feature collection"]),
    ({"collection": "bretagne-parcels", "filter": "fid = 1"}, 400,
     ["zones:", "unknown property fid", "queryable properties"]),
    ({"collection": "bretagne-parcels", "filter": "id = '1'; DROP TABLE x"}, 400,
     ["zones:", "not valid CQL2"]),
    ({"collection": "bretagne-parcels", "filter": "sqlite_version() = '3'"}, 400,
     ["zones:", "function sqlite_version"]),
    ({"collection": "bretagne-parcels", "bbox": [-200, -100, 200, 100]}, 400,
     ["zones:", "[-180, -90, 180, 90]"]),
])
def test_zonal_statistics_zones(server, zones, status, words):
    refused(execute(server, "zonal-statistics", {"zones": zones, "datetime": "2024-05-17"}),
            status, *words)


@pytest.mark.parametrize("inputs, status, words", [
    ({"variable": "__import__('os')"}, 400, ["variable:", "is not accepted", "NDVI"]),
    ({"statistics": ["mean; DROP TABLE x"]}, 400, ["statistics"]),
    ({"format": "../../x"}, 400, ["format:"]),
    ({"resolution": 1e-6}, 413, ["pixels", "100,000,000"]),
    ({"datetime": "0001-01-01"}, 404, ["no Sentinel-2 scene"]),
    ({"datetime": "garbage"}, 400, ["datetime:", "RFC 3339"]),
])
def test_zonal_statistics_other_inputs(server, inputs, status, words):
    base = {"zones": {"collection": "bretagne-parcels", "filter": "commune = '35051'"},
            "datetime": "2024-05-17"}
    refused(execute(server, "zonal-statistics", {**base, **inputs}), status, *words)


@pytest.mark.parametrize("process, inputs", [
    ("change-detection", {"area": SMALL, "before": "2024-05-17", "after": "2024-06-11"}),
    ("classification", {"area": SMALL, "datetime": "2024-06-11"}),
])
def test_optional_zones_are_checked_too(server, process, inputs):
    zones = zones_of({"type": "Polygon", "coordinates": [[[-1.6, 95], [-1.59, 95],
                                                          [-1.59, 96], [-1.6, 95]]]})
    refused(execute(server, process, {**inputs, "zones": zones}), 400, "zones:", "out of range")
    refused(execute(server, process, {**inputs, "zones": {"collection": "../../etc"}}), 400,
            "zones:", "no feature collection")


def test_zonal_statistics_repairs_an_invalid_zone_and_says_so(server):
    """Zones, unlike areas, are repaired one by one (a batch of parcels should not fail for
    one bad ring), with a warning naming the problem in that zone's result."""
    response = execute(server, "zonal-statistics", {"zones": zones_of(BOWTIE),
                                                    "datetime": "2024-05-17"})
    assert response.status_code == 200, response.text[:300]
    feature, = response.json()["features"]
    assert "invalid geometry repaired (Self-intersection" in feature["properties"]["warning"]


# --- JSON bodies --------------------------------------------------------------------------------

@pytest.mark.parametrize("body, depth", [
    ('{"inputs": {"area": ' + "[" * 10_000 + "]" * 10_000 + "}}", "10,002"),
    ('{"inputs": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}", "10,001"),
])
def test_deeply_nested_json_is_refused_before_parsing(server, body, depth):
    message = refused(execute(server, "spectral-index", data=body.encode()), 400,
                      "nests", depth, "at most 64", "SENTINELLE_MAX_JSON_DEPTH")
    assert "levels deep" in message


def test_brackets_inside_strings_do_not_count(server):
    response = execute(server, "spectral-index", {"area": SMALL, "datetime": "[" * 1000})
    refused(response, 400, "datetime:")


@pytest.mark.parametrize("body, words", [
    (b"\xff\xfe{not json", ["not UTF-8", "RFC 8259"]),
    (b'{"inputs": {"area": [1, 2', ["invalid request data"]),
])
def test_malformed_json_body(server, body, words):
    refused(execute(server, "spectral-index", data=body), 400, *words)


# --- paths and ids ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/jobs/../../etc/passwd", "/jobs/..%2f..%2fetc%2fpasswd", "/jobs/%2e%2e%2fjobs.tinydb",
    "/collections/%2e%2e", "/collections/..%2f..%2fetc%2fpasswd/items",
    "/collections/bretagne-parcels/items/..%2f..%2fetc%2fpasswd",
    "/collections/bretagne-parcels/items/a%5cb", "/collections/a%00b",
    "/metadata/..%2f..%2fetc%2fpasswd.xml", "/download/..%2f..%2fetc%2fpasswd.gpkg",
    "/licences/%2e%2e", "/processes/..%2f..%2fetc%2fpasswd",
    "/stac/sentinel-2-l2a-files/%2e%2e/%2e%2e/package.json",
    "/stac/sentinel-2-l2a-files/..%2f..%2fpackage.json",
    "/stac/sentinel-2-l2a-files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc?f=json",
])
def test_traversal_paths_are_refused(server, path):
    """``..`` however encoded (pygeoapi's STAC files provider joined it to the catalog folder:
    any .json or .tif of the machine was readable, any folder listable)."""
    answer = raw(server, path)
    refused(answer, 400, "'..' segments")
    assert "sentinelle-vendor" not in answer[2] and "root:" not in answer[2]


@pytest.mark.parametrize("method, path, status, words", [
    ("GET", "/jobs/not-a-uuid", 404, ["no job", "UUID"]),
    ("GET", "/jobs/not-a-uuid/results", 404, ["UUID"]),
    ("DELETE", "/jobs/not-a-uuid", 404, ["UUID"]),
    ("GET", "/jobs/" + "x" * 5000, 404, ["UUID"]),
    ("GET", f"/jobs/{uuid.uuid1()}", 404, []),
    ("GET", "/collections/no-such-collection", 404, ["not found"]),
    ("GET", "/collections/a;b", 404, ["no collection"]),
    ("GET", "/processes/no;such", 404, ["no process"]),
    ("GET", "/stac/sentinel-2-l2a-files/no-such-file.json", 404, ["no file or folder"]),
    ("GET", "/stac/sentinel-2-l2a-files//etc/passwd", 404, []),
    ("GET", "/no/such/route", 404, ["no resource at /no/such/route"]),
    ("DELETE", "/collections", 405, ["DELETE", "GET"]),
])
def test_ids_are_checked(server, method, path, status, words):
    refused(raw(server, path, method), status, *words)


@pytest.mark.parametrize("path, words", [
    ("/metadata/no-such-record.xml", "no scene 'no-such-record'"),
    ("/download/no-such-collection.gpkg", "no GeoPackage"),
    ("/download/sentinel-2-l2a.gpkg", "no GeoPackage"),
    ("/licences/no-such-licence", "known: etalab-2.0"),
    ("/vendor/..%2f..%2fpackage.json", "not a vendored package"),
    ("/vendor/leaflet/dist/..%2F..%2Fbootstrap%2Fpackage.json", "not a served file"),
])
def test_file_routes_serve_only_their_files(server, path, words):
    status, content_type, body = raw(server, path)
    assert status == 404 and words in body, (status, body[:300])
    assert "sentinelle-vendor" not in body


# --- limits (the second server) -----------------------------------------------------------------

def test_pixel_limit_names_the_numbers(limited):
    response = execute(limited, "spectral-index", {"area": [-1.62, 48.05, -1.48, 48.15],
                                                   "datetime": "2024-05-17"})
    message = refused(response, 413, "area:", "200,000 px")
    width, height, pixels, bands = re.search(
        r"(\d+) × (\d+) px, ([\d,]+) px with its (\d+) bands", message).groups()
    assert int(width) * int(height) * int(bands) == int(pixels.replace(",", "")) > 200_000
    planet = get(limited, COVERAGE, bbox="-180,-90,180,90", f="GTiff", datetime="2024-05-17")
    refused(planet, 413, "1002×1002", "limit is 200,000")


@pytest.mark.parametrize("surface", ["spectral-index", "change-detection", "classification",
                                     "zonal-statistics", "coverage", "map"])
def test_date_limit(limited, surface):
    year = "2024-01-01/2024-12-31"
    if surface == "coverage":
        response = get(limited, COVERAGE, f="GTiff", datetime=year, bbox=",".join(map(str, SMALL)))
    elif surface == "map":
        response = get(limited, MAP, datetime=year)
    elif surface == "zonal-statistics":
        response = execute(limited, surface, {"zones": zones_of(
            {"type": "Polygon", "coordinates": [[[-1.6, 48.09], [-1.59, 48.09], [-1.59, 48.1],
                                                 [-1.6, 48.09]]]}), "datetime": year,
            "temporal": "series"})
    elif surface == "change-detection":
        response = execute(limited, surface, {"area": SMALL, "before": "2024-01-01/2024-06-30",
                                              "after": "2024-07-01/2024-12-31"})
    else:
        response = execute(limited, surface, {"area": SMALL, "datetime": year})
    refused(response, 413, "scenes match but at most 2 can be combined")


def test_zone_limit(limited):
    triangle = {"type": "Polygon", "coordinates": [[[-1.6, 48.09], [-1.59, 48.09],
                                                    [-1.59, 48.1], [-1.6, 48.09]]]}
    inline = execute(limited, "zonal-statistics", {"zones": zones_of(*[triangle] * 6),
                                                   "datetime": "2024-05-17"})
    refused(inline, 413, "6 zones but at most 5")
    served = execute(limited, "zonal-statistics", {
        "zones": {"collection": "bretagne-parcels", "filter": "commune = '35051'"},
        "datetime": "2024-05-17"})
    refused(served, 413, "features of 'bretagne-parcels' match but at most 5 zones")


def test_body_size_limit(limited):
    body = b'{"inputs": {"area": [' + b"1," * 60_000 + b"1]}}"
    refused(execute(limited, "spectral-index", data=body), 413,
            f"{len(body):,} bytes", "at most 100,000 bytes", "SENTINELLE_MAX_BODY_BYTES")

    def chunks():  # no Content-Length: the server must stop reading at the limit
        yield b'{"inputs": {"area": ['
        for _ in range(100):
            yield b"1," * 10_000
        yield b"1]}}"

    chunked = requests.post(f"{limited.url}/processes/spectral-index/execution", data=chunks(),
                            headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    refused(chunked, 413, "at most 100,000 bytes")
    on_wms = requests.post(f"{limited.url}/wms", data=b"x" * 200_000, timeout=TIMEOUT)
    wms_refused(on_wms, 413, "at most 100,000 bytes")
    # the server still serves everything else
    assert get(limited, "/collections/bretagne-parcels/items", limit=1).status_code == 200


def test_stac_files_do_not_follow_links_out_of_the_catalog(limited):
    status, _, body = raw(limited, "/stac/sentinel-2-l2a-files/outside.json")
    assert status == 404 and "outside the catalog folder" in body
    assert "TOP-SECRET" not in body
    inside = get(limited, "/stac/sentinel-2-l2a-files/inside.json")
    assert inside.status_code == 200 and inside.json() == {"inside": True}


def test_limits_are_settings(monkeypatch):
    from sentinelle.settings import Limits

    assert Limits().max_body_bytes == 8 * 1024 * 1024 and Limits().max_json_depth == 64
    monkeypatch.setenv("SENTINELLE_MAX_BODY_BYTES", "1234")
    monkeypatch.setenv("SENTINELLE_MAX_JSON_DEPTH", "7")
    assert (Limits.from_env().max_body_bytes, Limits.from_env().max_json_depth) == (1234, 7)
