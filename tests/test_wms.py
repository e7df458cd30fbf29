"""WMS 1.3.0 at /wms: parameter validation (plain functions), then a real server read by real
clients (OWSLib, GDAL's WMS driver through rasterio, requests).  Map colours and
GetFeatureInfo values are checked against the OGC API Coverages NDVI of the same pixels, and
tiles of one date (the tile fast path, ``sentinelle.catalog.tiles``) against rasterio/numpy
reading the COGs directly, sequentially and under concurrent requests.

No WMS 1.3.0 / INSPIRE view-service XSD ships in any PyPI, npm or Debian package reachable
here (OWSLib, pycsw, ogc-schemas checked), so the capabilities are checked element by element.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import rasterio
import requests
from lxml import etree
from owslib.wms import WebMapService
from PIL import Image
from pyproj import Transformer
from rasterio.io import MemoryFile

from sentinelle.analysis.render import colorize
from sentinelle.catalog.area import CRS84
from sentinelle.ows.params import (
    WmsError,
    crs_from_code,
    normalise,
    parse_bbox,
    parse_crs,
    parse_language,
    parse_layers,
    parse_point,
    parse_styles,
    parse_time,
)

WMS_NS = {"w": "http://www.opengis.net/wms", "xlink": "http://www.w3.org/1999/xlink",
          "ic": "http://inspire.ec.europa.eu/schemas/common/1.0",
          "ivs": "http://inspire.ec.europa.eu/schemas/inspire_vs/1.0",
          "ogc": "http://www.opengis.net/ogc"}
INDICES_SAMPLE = ("NDVI", "NDWI", "NDMI", "EVI", "SAVI")  # NBR needs swir22: not in the sample
LAYERS = [f"{area}:{product}" for area in ("bretagne", "guyane")
          for product in ("OI.OrthoimageCoverage",) + INDICES_SAMPLE]
#: derived products of the configuration's presets (tested in test_products.py)
DERIVED_LAYERS = [f"{area}:{product}" for area in ("bretagne", "guyane")
                  for product in ("LC.LandCoverRaster", "NDVI-change")]
DATE = "2024-06-11"
# ~2 km square east of Rennes, in Web Mercator and Lambert-93 (inside the sample area)
BBOX_3857 = (-176400.0, 6125200.0, -174400.0, 6127200.0)
BBOX_2154 = (359000.0, 6785500.0, 361000.0, 6787500.0)


# --- plain validators -------------------------------------------------------------------------

def test_parameter_names_are_case_insensitive():
    assert normalise({"request": "GetMap", "Layers": "a"}) == {"REQUEST": "GetMap", "LAYERS": "a"}


def test_language_falls_back_to_french():
    assert parse_language("eng") == "en"
    assert parse_language("fre") == "fr"
    assert parse_language("deu") == "fr"
    assert parse_language(None) == "fr"


def test_bbox_axis_order_follows_the_crs():
    assert parse_bbox("48.0,-1.6,48.1,-1.5", crs_from_code("EPSG:4326")) == (-1.6, 48.0, -1.5,
                                                                              48.1)
    assert parse_bbox("-1.6,48.0,-1.5,48.1", crs_from_code("CRS:84")) == (-1.6, 48.0, -1.5, 48.1)
    # ETRS89-LAEA is northing first
    assert parse_bbox("2800000,3400000,2801000,3401000",
                      crs_from_code("EPSG:3035")) == (3400000, 2800000, 3401000, 2801000)
    with pytest.raises(WmsError) as err:
        parse_bbox("48.1,-1.6,48.0,-1.5", crs_from_code("EPSG:4326"))
    assert err.value.code == "InvalidParameterValue" and "minlat" in err.value.message


@pytest.mark.parametrize("call, code", [
    (lambda: parse_crs("EPSG:9999", ["EPSG:3857"]), "InvalidCRS"),
    (lambda: parse_layers("nope", ["bretagne:NDVI"]), "LayerNotDefined"),
    (lambda: parse_styles("foo", ["a"], {"a": ["ndvi"]}), "StyleNotDefined"),
    (lambda: parse_time("2023-01-01", ["2024-06-11"], "2024-06-11"), "InvalidDimensionValue"),
    (lambda: parse_time("2023-01-01/2023-02-01", ["2024-06-11"], None), "InvalidDimensionValue"),
    (lambda: parse_time(None, ["2024-06-11"], None), "MissingDimensionValue"),
    (lambda: parse_point({"I": "300", "J": "1"}, (256, 256)), "InvalidPoint"),
])
def test_validators_raise_the_wms_code(call, code):
    with pytest.raises(WmsError) as err:
        call()
    assert err.value.code == code


def test_time_values():
    dates = ["2024-05-17", "2024-06-11", "2024-07-21"]
    assert parse_time("2024-06-11", dates, None).single
    assert parse_time("2024-06-11T10:56:00Z", dates, None).single
    composite = parse_time("2024-05-01/2024-08-31", dates, None)
    assert not composite.single and composite.interval.start.isoformat().startswith("2024-05-01")
    assert parse_time(None, dates, "2024-07-21").interval.start.date().isoformat() == "2024-07-21"
    assert parse_styles("", ["a"], {"a": ["ndvi"]}) == ["ndvi"]
    assert parse_styles("default", ["a"], {"a": ["ndvi"]}) == ["ndvi"]


# --- a real server --------------------------------------------------------------------------------


def wms(server, **params):
    return requests.get(f"{server.url}/wms", params={"SERVICE": "WMS", **params}, timeout=120)


@pytest.fixture(scope="module")
def capabilities(server):
    response = wms(server, REQUEST="GetCapabilities")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    return etree.fromstring(response.content)


@pytest.fixture(scope="module")
def owslib_wms(server):
    return WebMapService(f"{server.url}/wms", version="1.3.0", timeout=120)


@pytest.fixture(scope="module")
def coverage_ndvi(server):
    """The bretagne-ndvi coverage of the whole area on DATE (GeoTIFF): values and grid."""
    response = requests.get(f"{server.url}/collections/bretagne-ndvi/coverage",
                            params={"f": "GTiff", "datetime": DATE}, timeout=300)
    assert response.status_code == 200, response.text[:300]
    with MemoryFile(response.content) as memfile, memfile.open() as ds:
        return ds.read(1), ds.transform, ds.crs


@pytest.mark.server
def test_owslib_sees_every_layer_with_its_dates(owslib_wms, sample_dir):
    from sentinelle.catalog.sample import outline
    from sentinelle.catalog.source import open_catalog

    assert set(LAYERS) <= set(owslib_wms.contents)
    catalog = open_catalog(sample_dir / "catalog")
    for name in LAYERS:
        layer = owslib_wms[name]
        area = outline(sample_dir, name.split(":")[0])
        expected = sorted({s.date.isoformat() for s in catalog.find(area)})
        assert layer.timepositions == expected
        assert layer.defaulttimeposition in expected
        assert layer.queryable
        assert layer.styles and all(s["legend"] for s in layer.styles.values())
        assert layer.metadataUrls[0]["url"].endswith(".xml")
    bretagne, guyane = owslib_wms["bretagne:NDVI"], owslib_wms["guyane:NDVI"]
    for code in ("EPSG:3857", "EPSG:4326", "CRS:84", "EPSG:2154", "EPSG:4258", "EPSG:3035",
                 "EPSG:32630"):
        assert code in bretagne.crsOptions
    for code in ("EPSG:3857", "EPSG:4326", "CRS:84", "EPSG:2972", "EPSG:4624", "EPSG:32622"):
        assert code in guyane.crsOptions
    assert "EPSG:2154" not in guyane.crsOptions


@pytest.mark.server
@pytest.mark.parametrize("language, expected", [
    ("fre", "Orthoimagerie Sentinel-2 en couleurs naturelles"),
    ("eng", "Sentinel-2 orthoimagery, true colour"),
    ("xyz", "Orthoimagerie Sentinel-2 en couleurs naturelles"),
])
def test_language(server, language, expected):
    response = wms(server, REQUEST="GetCapabilities", LANGUAGE=language)
    root = etree.fromstring(response.content)
    titles = root.xpath("//w:Layer[w:Name='bretagne:OI.OrthoimageCoverage']/w:Title/text()",
                        namespaces=WMS_NS)
    assert titles[0].startswith(expected)
    code = "eng" if language == "eng" else "fre"
    assert root.xpath("//ic:ResponseLanguage/ic:Language/text()", namespaces=WMS_NS) == [code]
    assert response.headers["Content-Language"] == code[:2]


@pytest.mark.server
def test_capabilities_required_elements(server, capabilities):
    """WMS 1.3.0 and INSPIRE view-service elements, one by one (no XSD available offline)."""
    root, ns = capabilities, WMS_NS
    assert root.tag == "{http://www.opengis.net/wms}WMS_Capabilities"
    assert root.get("version") == "1.3.0"
    assert root.xpath("w:Service/w:Name/text()", namespaces=ns) == ["WMS"]
    for tag in ("Title", "Abstract", "KeywordList", "OnlineResource", "ContactInformation",
                "Fees", "AccessConstraints", "MaxWidth", "MaxHeight"):
        assert root.find(f"w:Service/w:{tag}", ns) is not None, tag
    request = root.find("w:Capability/w:Request", ns)
    for op in ("GetCapabilities", "GetMap", "GetFeatureInfo"):
        node = request.find(f"w:{op}", ns)
        assert node is not None
        href = node.find("w:DCPType/w:HTTP/w:Get/w:OnlineResource", ns).get(
            f"{{{ns['xlink']}}}href")
        assert href.startswith(f"{server.url}/wms")
    assert request.xpath("w:GetMap/w:Format/text()", namespaces=ns) == ["image/png",
                                                                       "image/jpeg"]
    assert set(request.xpath("w:GetFeatureInfo/w:Format/text()", namespaces=ns)) == {
        "text/plain", "application/json", "text/html"}
    assert root.xpath("w:Capability/w:Exception/w:Format/text()", namespaces=ns) == ["XML"]
    # INSPIRE extended capabilities (scenario 2)
    ext = root.find("w:Capability/ivs:ExtendedCapabilities", ns)
    url = ext.find("ic:MetadataUrl/ic:URL", ns).text
    record = requests.get(url, timeout=60)
    assert record.status_code == 200 and b"SV_ServiceIdentification" in record.content
    assert ext.xpath("ic:SupportedLanguages/ic:DefaultLanguage/ic:Language/text()",
                     namespaces=ns) == ["fre"]
    assert ext.xpath("ic:SupportedLanguages/ic:SupportedLanguage/ic:Language/text()",
                     namespaces=ns) == ["eng"]
    # element order inside Capability: Request, Exception, extended capabilities, Layer
    order = [etree.QName(c).localname for c in root.find("w:Capability", ns)]
    assert order == ["Request", "Exception", "ExtendedCapabilities", "Layer"]
    # every named layer
    schema_order = ["Name", "Title", "Abstract", "KeywordList", "CRS", "EX_GeographicBoundingBox",
                    "BoundingBox", "Dimension", "Attribution", "AuthorityURL", "Identifier",
                    "MetadataURL", "DataURL", "FeatureListURL", "Style", "MinScaleDenominator",
                    "MaxScaleDenominator", "Layer"]
    for layer in root.iter("{http://www.opengis.net/wms}Layer"):
        tags = [etree.QName(c).localname for c in layer]
        positions = [schema_order.index(t) for t in tags]
        assert positions == sorted(positions), tags
        if layer.find("w:Name", ns) is None:
            continue
        name = layer.find("w:Name", ns).text
        assert name in LAYERS + DERIVED_LAYERS
        for tag in ("Title", "Abstract", "KeywordList", "EX_GeographicBoundingBox",
                    "BoundingBox", "MetadataURL", "Style/w:LegendURL"):
            assert layer.find(f"w:{tag}", ns) is not None, (name, tag)
        dim = layer.find("w:Dimension", ns)
        assert dim.get("name") == "time" and dim.get("units") == "ISO8601"
        assert dim.get("default") in dim.text.split(",")
        boxes = {b.get("CRS"): b for b in layer.findall("w:BoundingBox", ns)}
        parent_crs = set(layer.xpath("ancestor-or-self::w:Layer/w:CRS/text()", namespaces=ns))
        assert set(boxes) == parent_crs
        # EPSG:4326 bounding boxes are latitude first in WMS 1.3.0
        lat, lon = float(boxes["EPSG:4326"].get("minx")), float(boxes["EPSG:4326"].get("miny"))
        assert lat == pytest.approx(float(boxes["CRS:84"].get("miny")))
        assert lon == pytest.approx(float(boxes["CRS:84"].get("minx")))


@pytest.mark.server
def test_metadata_and_legend_urls_resolve(server, owslib_wms):
    layer = owslib_wms["bretagne:NDVI"]
    record = requests.get(layer.metadataUrls[0]["url"], timeout=60)
    assert record.status_code == 200
    assert etree.fromstring(record.content).tag == "{http://www.isotc211.org/2005/gmd}MD_Metadata"
    for name in ("bretagne:NDVI", "guyane:OI.OrthoimageCoverage"):
        style = next(iter(owslib_wms[name].styles.values()))
        legend = requests.get(style["legend"], timeout=60)
        assert legend.status_code == 200 and legend.headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(legend.content)).size == (300, 64)


def _ndvi_rgba_expected(coverage, x: np.ndarray, y: np.ndarray, crs: str):
    """Colour of the coverage's NDVI pixel under each map pixel centre; None when the centre
    lies within 1.5 m of a native pixel edge (either neighbour may be drawn)."""
    values, transform, cov_crs = coverage
    to_native = Transformer.from_crs(crs, cov_crs, always_xy=True)
    px, py = to_native.transform(x, y)
    col_f, row_f = ~transform * (px, py)
    col, row = np.floor(col_f).astype(int), np.floor(row_f).astype(int)
    edge = np.minimum.reduce([col_f - col, col + 1 - col_f, row_f - row, row + 1 - row_f]) * 10
    inside = (row >= 0) & (row < values.shape[0]) & (col >= 0) & (col < values.shape[1])
    ndvi = np.full(x.shape, np.nan)
    ndvi[inside] = values[row[inside], col[inside]]
    return colorize(ndvi, "ndvi"), edge > 1.5


@pytest.mark.server
@pytest.mark.parametrize("crs, bbox", [("EPSG:3857", BBOX_3857), ("EPSG:2154", BBOX_2154)])
def test_getmap_colours_match_the_coverage(owslib_wms, coverage_ndvi, crs, bbox):
    response = owslib_wms.getmap(layers=["bretagne:NDVI"], srs=crs, bbox=bbox, size=(256, 256),
                                 format="image/png", transparent=True, time=DATE)
    image = Image.open(io.BytesIO(response.read()))
    assert image.format == "PNG" and image.size == (256, 256)
    rgba = np.asarray(image.convert("RGBA"))
    rng = np.random.default_rng(7)
    cols, rows = rng.integers(0, 256, 400), rng.integers(0, 256, 400)
    minx, miny, maxx, maxy = bbox
    x = minx + (cols + 0.5) * (maxx - minx) / 256
    y = maxy - (rows + 0.5) * (maxy - miny) / 256
    expected, safe = _ndvi_rgba_expected(coverage_ndvi, x, y, crs)
    got = rgba[rows, cols]
    assert safe.sum() > 150
    same = np.all(np.abs(got.astype(int) - expected.astype(int)) <= 1, axis=-1)
    assert same[safe].mean() > 0.97, same[safe].mean()
    assert (got[safe, 3] == 255).mean() > 0.5  # mostly clear on that date


@pytest.mark.server
def test_getmap_4326_is_latitude_first(server):
    common = dict(REQUEST="GetMap", VERSION="1.3.0", LAYERS="bretagne:NDVI", STYLES="",
                  WIDTH=64, HEIGHT=64, FORMAT="image/png", TIME=DATE)
    lonlat = wms(server, CRS="CRS:84", BBOX="-1.58,48.09,-1.56,48.11", **common)
    latlon = wms(server, CRS="EPSG:4326", BBOX="48.09,-1.58,48.11,-1.56", **common)
    assert lonlat.status_code == latlon.status_code == 200
    a = np.asarray(Image.open(io.BytesIO(lonlat.content)))
    b = np.asarray(Image.open(io.BytesIO(latlon.content)))
    assert np.array_equal(a, b)


@pytest.mark.server
def test_getmap_formats_time_and_layers(server):
    common = dict(REQUEST="GetMap", VERSION="1.3.0", STYLES="", CRS="EPSG:3857",
                  BBOX=",".join(map(str, BBOX_3857)), WIDTH=128, HEIGHT=96)
    jpeg = wms(server, LAYERS="bretagne:OI.OrthoimageCoverage", FORMAT="image/jpeg", **common)
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (128, 96)
    opaque = wms(server, LAYERS="bretagne:NDVI", FORMAT="image/png", TRANSPARENT="FALSE",
                 BGCOLOR="0x000000", TIME=DATE, **common)
    assert Image.open(io.BytesIO(opaque.content)).mode == "RGB"
    composite = wms(server, LAYERS="bretagne:OI.OrthoimageCoverage,bretagne:NDVI",
                    FORMAT="image/png", TRANSPARENT="TRUE", TIME="2024-05-01/2024-08-31",
                    **{**common, "STYLES": "true-color,ndvi"})
    assert composite.status_code == 200
    image = np.asarray(Image.open(io.BytesIO(composite.content)).convert("RGBA"))
    assert (image[..., 3] == 255).mean() > 0.9  # a composite fills the clouds in
    outside = wms(server, LAYERS="guyane:NDVI", FORMAT="image/png", TRANSPARENT="TRUE",
                  **{**common, "CRS": "EPSG:4326", "BBOX": "4.0,-53.0,4.1,-52.9"})
    assert outside.status_code == 200
    assert np.asarray(Image.open(io.BytesIO(outside.content)).convert("RGBA"))[..., 3].max() == 0


@pytest.mark.server
def test_gdal_wms_driver_reads_the_service(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(f"WMS:{server.url}/wms?SERVICE=WMS&VERSION=1.3.0"
                           "&REQUEST=GetCapabilities") as ds:
            subdatasets = list(ds.subdatasets)
        assert len(subdatasets) == len(LAYERS) + len(DERIVED_LAYERS)
        name = next(s for s in subdatasets if "bretagne%3ANDVI" in s)
        with rasterio.open(name) as ds:
            assert ds.crs == CRS84 or ds.crs.to_string() == "OGC:CRS84"
            data = ds.read(out_shape=(ds.count, 128, 128))
    assert data.shape[1:] == (128, 128)
    assert data.std() > 5  # a real picture, not a blank or an error image


@pytest.mark.server
@pytest.mark.parametrize("time", [DATE, "2024-06-01/2024-08-31"])
def test_getfeatureinfo_matches_the_coverage(server, time):
    # a map on the native 10 m grid: pixel (i, j) is exactly one coverage pixel
    x0, y0 = 606000, 5328000
    common = dict(REQUEST="GetFeatureInfo", VERSION="1.3.0", LAYERS="bretagne:NDVI",
                  QUERY_LAYERS="bretagne:NDVI", STYLES="", CRS="EPSG:32630",
                  BBOX=f"{x0},{y0},{x0 + 100},{y0 + 100}", WIDTH=10, HEIGHT=10, TIME=time)
    coverage = requests.get(f"{server.url}/collections/bretagne-ndvi/coverage", params={
        "subset": f"x({x0}:{x0 + 100}),y({y0}:{y0 + 100})", "datetime": time, "f": "json"},
        timeout=120).json()
    values = np.array(coverage["ranges"]["NDVI"]["values"], dtype=float).reshape(10, 10)
    for i, j in ((3, 4), (0, 0), (9, 9)):
        info = wms(server, INFO_FORMAT="application/json", I=i, J=j, **common)
        assert info.status_code == 200, info.text
        properties = info.json()["features"][0]["properties"]
        if np.isnan(values[j, i]):
            assert properties["NDVI"] is None
        else:
            assert properties["NDVI"] == pytest.approx(values[j, i], abs=1e-5)
    text = wms(server, INFO_FORMAT="text/plain", I=3, J=4, **common)
    assert text.headers["Content-Type"].startswith("text/plain") and "NDVI = " in text.text
    page = wms(server, INFO_FORMAT="text/html", I=3, J=4, **common)
    assert page.headers["Content-Type"].startswith("text/html") and "<table>" in page.text


@pytest.mark.server
@pytest.mark.parametrize("change, code", [
    ({"CRS": "EPSG:2972"}, "InvalidCRS"),  # a Guiana CRS on a Brittany layer
    ({"CRS": "EPSG:9999"}, "InvalidCRS"),
    ({"CRS": "EPSG:4326", "BBOX": "48.1,-1.6,48.0,-1.5"}, "InvalidParameterValue"),
    ({"BBOX": "-174400,6125200,-176400,6127200"}, "InvalidParameterValue"),
    ({"TIME": "2023-06-11"}, "InvalidDimensionValue"),
    ({"TIME": "2025-01-01/2025-12-31"}, "InvalidDimensionValue"),
    ({"LAYERS": "bretagne:NBR"}, "LayerNotDefined"),
    ({"LAYERS": "nowhere:NDVI"}, "LayerNotDefined"),
    ({"STYLES": "rainbow"}, "StyleNotDefined"),
    ({"FORMAT": "image/gif"}, "InvalidFormat"),
    ({"REQUEST": "GetTile"}, "OperationNotSupported"),
    ({"WIDTH": "100000"}, "InvalidParameterValue"),
])
def test_service_exceptions(server, change, code):
    params = {**dict(REQUEST="GetMap", VERSION="1.3.0", LAYERS="bretagne:NDVI", STYLES="",
                     CRS="EPSG:3857", BBOX=",".join(map(str, BBOX_3857)), WIDTH=64, HEIGHT=64,
                     FORMAT="image/png"), **change}
    response = wms(server, **params)
    assert response.status_code < 500
    assert response.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    assert root.tag == "{http://www.opengis.net/ogc}ServiceExceptionReport"
    assert root.get("version") == "1.3.0"
    exception = root.find("ogc:ServiceException", WMS_NS)
    assert exception.get("code") == code
    assert exception.text.strip()


@pytest.mark.server
def test_getfeatureinfo_point_outside_is_invalid_point(server):
    response = wms(server, REQUEST="GetFeatureInfo", VERSION="1.3.0", LAYERS="bretagne:NDVI",
                   QUERY_LAYERS="bretagne:NDVI", STYLES="", CRS="EPSG:3857",
                   BBOX=",".join(map(str, BBOX_3857)), WIDTH=64, HEIGHT=64,
                   INFO_FORMAT="application/json", I=64, J=3)
    root = etree.fromstring(response.content)
    assert root.find("ogc:ServiceException", WMS_NS).get("code") == "InvalidPoint"


# --- the tile fast path, end to end --------------------------------------------------------------

ORIGIN_3857 = 20037508.342789244
#: SCL classes hidden by default: no data, defective, shadow, clouds (medium, high), cirrus, snow
MASKED_SCL = (0, 1, 3, 8, 9, 10, 11)


def _xyz_tile(lon: float, lat: float, z: int) -> tuple[float, float, float, float]:
    n, size = 2 ** z, 2 * ORIGIN_3857 / 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    return (-ORIGIN_3857 + x * size, ORIGIN_3857 - (y + 1) * size,
            -ORIGIN_3857 + (x + 1) * size, ORIGIN_3857 - y * size)


def _getmap_tile(server, bounds, time, layer="bretagne:NDVI"):
    response = wms(server, REQUEST="GetMap", VERSION="1.3.0", LAYERS=layer, STYLES="",
                   CRS="EPSG:3857", BBOX=",".join(f"{v:.6f}" for v in bounds), WIDTH=256,
                   HEIGHT=256, FORMAT="image/png", TRANSPARENT="TRUE", TIME=time)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png", \
        response.text[:300]
    return response.content


def _ndvi_tile_from_cogs(sample_dir, bounds, date, *, overview_level=None):
    """NDVI of the Brittany scene of ``date`` on a 256 × 256 Web-Mercator tile, straight from
    the COGs with rasterio and numpy: a WarpedVRT onto the tile pixels that cover the area
    (average when the ground pixel is coarser than 10 m, nearest otherwise; SCL always
    nearest), scale and offset from the item's ``raster:bands``, SCL mask, NaN outside the
    area."""
    import json

    from rasterio.features import geometry_mask
    from rasterio.vrt import WarpedVRT
    from shapely.geometry import box, shape
    from shapely.ops import transform as reproject_shape

    folder = next((sample_dir / "catalog" / "sentinel-2-l2a").glob(
        f"*_30UXU_{date.replace('-', '')}_*"))
    item = json.loads((folder / f"{folder.name}.json").read_text())
    areas = json.loads((sample_dir / "vectors" / "areas.geojson").read_text())
    outline = shape(next(f["geometry"] for f in areas["features"]
                         if f["properties"]["area"] == "bretagne"))
    to_3857 = Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True).transform
    outline = reproject_shape(to_3857, outline)
    minx, miny, maxx, maxy = bounds
    tile = rasterio.Affine((maxx - minx) / 256, 0, minx, 0, -(maxy - miny) / 256, maxy)
    # the tile pixels holding the area: the window that is read (GDAL's approximate warp
    # depends slightly on the window, so the reference reads the same one)
    px0, py0, px1, py1 = outline.intersection(box(*bounds)).bounds
    col0, row0 = int(np.floor((px0 - minx) / tile.a)), int(np.floor((maxy - py1) / tile.a))
    col1, row1 = int(np.ceil((px1 - minx) / tile.a)), int(np.ceil((maxy - py0) / tile.a))
    width, height = col1 - col0, row1 - row0
    window = tile * rasterio.Affine.translation(col0, row0)
    lat = np.degrees(np.arctan(np.sinh((miny + maxy) / 2 / 6378137)))
    ground = tile.a * np.cos(np.radians(lat))
    averaged = rasterio.enums.Resampling.average if ground > 10.1 else \
        rasterio.enums.Resampling.nearest

    def read(band, resampling, level=None):
        asset = item["assets"][band]
        options = {} if level is None else {"overview_level": level}
        dn = np.zeros((256, 256), dtype="uint16")
        with rasterio.open(folder / asset["href"], **options) as src, \
                WarpedVRT(src, crs="EPSG:3857", transform=window, width=width, height=height,
                          resampling=resampling) as vrt:
            dn[row0:row1, col0:col1] = vrt.read(1)
        meta = asset["raster:bands"][0]
        values = dn.astype("float32") * np.float32(meta.get("scale", 1)) + \
            np.float32(meta.get("offset", 0))
        return np.where(dn == meta.get("nodata", 0), np.nan, values), dn

    red, _ = read("red", averaged, overview_level)
    nir, _ = read("nir", averaged, overview_level)
    _, scl = read("scl", rasterio.enums.Resampling.nearest)
    ndvi = (nir - red) / (nir + red)
    ndvi[np.isin(scl, MASKED_SCL)] = np.nan
    inside = geometry_mask([outline], out_shape=(256, 256), transform=tile, invert=True)
    ndvi[~inside] = np.nan
    return ndvi


@pytest.mark.server
@pytest.mark.parametrize("zoom, date, overview_level", [
    (15, "2024-07-21", None),  # 10 m pixels read as they are, clouds masked
    (13, "2024-06-11", None),  # ~13 m: averaged from the full resolution
    (12, "2024-07-21", 0),     # ~26 m: averaged from the 20 m overview; cut by the area edge
])
def test_getmap_tiles_equal_rasterio_on_the_cogs(server, sample_dir, zoom, date,
                                                 overview_level):
    bounds = _xyz_tile(-1.585, 48.085, zoom)
    got = np.asarray(Image.open(io.BytesIO(_getmap_tile(server, bounds, date))).convert("RGBA"))
    ndvi = _ndvi_tile_from_cogs(sample_dir, bounds, date, overview_level=overview_level)
    expected = colorize(ndvi, "ndvi")
    shown = expected[..., 3] > 0
    assert 0.2 < shown.mean()
    assert (got[..., 3] == expected[..., 3]).mean() > 0.995
    both = shown & (got[..., 3] > 0)
    close = np.all(np.abs(got.astype(int) - expected.astype(int)) <= 1, axis=-1)
    assert close[both].mean() > 0.99, close[both].mean()
    if zoom == 15:  # a tile inside the area: what is transparent is cloud, as on the COGs
        assert (got[..., 3] == 0).mean() > 0.01


@pytest.mark.server
def test_concurrent_getmaps_equal_sequential_ones(server):
    import concurrent.futures

    tiles = [_xyz_tile(-1.585 + 0.006 * k, 48.085 - 0.004 * (k % 3), 15 + k % 2)
             for k in range(8)]
    first = [_getmap_tile(server, bounds, "2024-07-21") for bounds in tiles]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        again = list(pool.map(lambda b: _getmap_tile(server, b, "2024-07-21"), tiles * 2))
    assert again == first * 2
    assert len(set(first)) == len(first)  # eight different tiles
