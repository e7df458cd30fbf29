"""Derived products: the ``products`` OGC API Records collection and the WMS layers of the
land-cover classification (``*:LC.LandCoverRaster``) and of the NDVI change
(``*:NDVI-change``), against a real server.

Classes are checked against an independent computation from the COGs (rasterio + numpy: the
rules of the classification written again here, not imported), and against the sample's
land-cover truth; the change layers against the sample's known changes (the Guiana clearing,
26 ha, and the new 12 ha built-up area in Brittany, ``data/truth/changes.geojson``).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rasterio
import requests
import shapely
import shapely.ops
from lxml import etree, html
from PIL import Image
from pyproj import Transformer
from rasterio.features import geometry_mask

from sentinelle.analysis.classify import RULES_LEGEND
from sentinelle.ows.derived import swatch_centre

pytestmark = pytest.mark.server

WMS_NS = {"w": "http://www.opengis.net/wms", "xlink": "http://www.w3.org/1999/xlink"}
GMD = {"gmd": "http://www.isotc211.org/2005/gmd", "gco": "http://www.isotc211.org/2005/gco"}
AREAS = ("bretagne", "guyane")
DERIVED = [f"{area}:{name}" for area in AREAS for name in ("LC.LandCoverRaster", "NDVI-change")]
#: the sample's two areas on their native 10 m grids (the COGs' grids): x0, y0 (top), EPSG
GRIDS = {"bretagne": (602960, 5333440, 32630), "guyane": (334200, 541260, 32622)}
CLEAR = {"bretagne": "2024-06-11", "guyane": "2024-10-21"}  # the presets' defaults
#: the truth's classes (1 water, 2 built-up, 3 bare soil, 4 grassland, 5 crop, 6 forest,
#: 7 sparse vegetation) → the rules' codes (1 water, 2 bare/built, 3 sparse, 4 grass/crop,
#: 5 trees)
TRUTH_TO_RULES = np.array([0, 1, 2, 2, 4, 4, 5, 3], dtype="uint8")
#: SCL classes masked by default: no data, defective, shadow, clouds (3), cirrus, snow
MASKED_SCL = (0, 1, 3, 8, 9, 10, 11)
RED, GREEN = (200, 30, 30), (20, 140, 50)


def wms(server, **params):
    return requests.get(f"{server.url}/wms", params={"SERVICE": "WMS", "VERSION": "1.3.0",
                                                     **params}, timeout=300)


def get_json(server, path, headers=None, **params):
    response = requests.get(f"{server.url}{path}", params={"f": "json", **params},
                            headers=headers or {}, timeout=300)
    assert response.status_code == 200, response.text[:300]
    return response


def whole_area_map(server, layer, *, time=None, **extra):
    """GetMap of a whole area on its native 10 m grid: map pixel (row, col) = COG pixel."""
    area = layer.split(":")[0]
    x0, y0, epsg = GRIDS[area]
    params = dict(REQUEST="GetMap", LAYERS=layer, STYLES="", CRS=f"EPSG:{epsg}",
                  BBOX=f"{x0},{y0 - 10000},{x0 + 10000},{y0}", WIDTH=1000, HEIGHT=1000,
                  FORMAT="image/png", TRANSPARENT="TRUE", **extra)
    if time:
        params["TIME"] = time
    response = wms(server, **params)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (1000, 1000)
    return np.asarray(image.convert("RGBA"))


def scene_dir(sample_dir, area, date):
    tile = {"bretagne": "30UXU", "guyane": "22NCL"}[area]
    [item] = (sample_dir / "catalog").rglob(f"S2*_{tile}_{date.replace('-', '')}_*_L2A.json")
    return item


def rules_from_cogs(sample_dir, area, date):
    """The rules classification of one date, from the COGs with rasterio and numpy only:
    reflectance = DN × scale + offset (the item's raster:bands), 20 m bands repeated on the
    10 m grid, SCL-masked; the first matching rule wins (water, trees, bare, sparse, grass)."""
    item_path = scene_dir(sample_dir, area, date)
    item = json.loads(item_path.read_text())
    bands = {}
    for name in ("green", "red", "nir", "swir16", "scl"):
        asset = item["assets"][name]
        with rasterio.open(item_path.parent / asset["href"]) as ds:
            values = ds.read(1)
        if values.shape[0] == 500:
            values = values.repeat(2, axis=0).repeat(2, axis=1)
        if name != "scl":
            info = asset["raster:bands"][0]
            values = np.where(values == 0, np.nan, values * info["scale"] + info["offset"])
        bands[name] = values
    g, r, n, s = (bands[k] for k in ("green", "red", "nir", "swir16"))
    ndvi, ndwi, ndmi = (n - r) / (n + r), (g - n) / (g + n), (n - s) / (n + s)
    classes = np.full(ndvi.shape, 4, dtype="uint8")                    # grassland / crop
    classes[ndvi < 0.35] = 3                                            # sparse vegetation
    classes[ndvi < 0.2] = 2                                             # bare soil / built-up
    classes[(ndvi >= 0.82) & (ndmi >= 0.2)] = 5                         # trees
    classes[ndwi > 0] = 1                                               # water
    invalid = ~(np.isfinite(ndvi) & np.isfinite(ndwi) & np.isfinite(ndmi))
    invalid |= np.isin(bands["scl"], MASKED_SCL)
    classes[invalid] = 0
    return classes, {"ndvi": ndvi, "ndwi": ndwi, "ndmi": ndmi}


def colour_codes(rgba, colours):
    """Class code per map pixel from its colour (0 = transparent or another colour)."""
    codes = np.zeros(rgba.shape[:2], dtype="uint8")
    for code, colour in colours.items():
        codes[(rgba[..., 3] == 255) & np.all(rgba[..., :3] == colour, axis=-1)] = code
    return codes


def truth_change(sample_dir, area):
    """The known change of an area on its 10 m grid (mask) and its area (ha)."""
    features = json.loads((sample_dir / "truth" / "changes.geojson").read_text())["features"]
    feature = next(f for f in features if f["properties"]["area"] == area)
    x0, y0, epsg = GRIDS[area]
    project = Transformer.from_crs(4326, epsg, always_xy=True).transform
    patch = shapely.ops.transform(project, shapely.geometry.shape(feature["geometry"]))
    mask = ~geometry_mask([patch], out_shape=(1000, 1000),
                          transform=rasterio.Affine(10, 0, x0, 0, -10, y0))
    return mask, patch, feature["properties"]["area_ha"]


# --- records -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def capabilities(server):
    response = wms(server, REQUEST="GetCapabilities")
    assert response.status_code == 200
    return etree.fromstring(response.content)


@pytest.fixture(scope="module")
def records(server):
    return get_json(server, "/collections/products/items", limit=1000).json()


def test_one_record_per_wms_layer(records, capabilities):
    named = capabilities.xpath("//w:Layer[w:Name]", namespaces=WMS_NS)
    by_id = {layer.findtext("w:Identifier", namespaces=WMS_NS):
             layer.findtext("w:Name", namespaces=WMS_NS) for layer in named}
    assert set(DERIVED) <= set(by_id.values())
    assert records["numberMatched"] == len(records["features"]) == len(named)
    for record in records["features"]:
        assert by_id[record["id"]] == record["properties"]["wms_layer"]
        [wms_link] = [link for link in record["links"] if link["rel"] == "wms"]
        assert wms_link["wms:layers"] == [record["properties"]["wms_layer"]]
    kinds = {r["id"]: r["properties"]["kind"] for r in records["features"]}
    assert kinds["guyane-landcover"] == "classification"
    assert kinds["bretagne-ndvi-change"] == "change"
    assert kinds["bretagne-s2"] == "true-color" and kinds["guyane-ndwi"] == "index"


@pytest.mark.parametrize("product, process, coverage", [
    ("guyane-landcover", "classification", False),
    ("bretagne-ndvi-change", "change-detection", False),
    ("bretagne-ndvi", "spectral-index", True),
    ("guyane-s2", None, True),
])
def test_record_links_resolve(server, product, process, coverage):
    record = get_json(server, f"/collections/products/items/{product}").json()
    links = {}
    for link in record["links"]:
        links.setdefault(link["rel"], []).append(link)
    # ISO 19139 record of the product, child of the products series
    [described] = links["describedby"]
    assert described["type"] == "application/xml"
    iso = requests.get(described["href"], timeout=120)
    assert iso.status_code == 200 and iso.headers["Content-Type"].startswith("application/xml")
    root = etree.fromstring(iso.content)
    assert root.xpath("gmd:fileIdentifier/gco:CharacterString/text()", namespaces=GMD) == [
        product]
    assert root.xpath("gmd:parentIdentifier/gco:CharacterString/text()", namespaces=GMD) == [
        "products"]
    # the WMS layer: a preview of the default date and the legend
    preview = requests.get(links["preview"][0]["href"], timeout=300)
    assert preview.status_code == 200 and preview.headers["Content-Type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(preview.content)).convert("RGBA"))
    assert image.shape[1] == 512 and (image[..., 3] > 0).any()
    legend = requests.get(links["http://www.opengis.net/def/rel/ogc/1.0/legend"][0]["href"],
                          timeout=60)
    assert legend.status_code == 200 and legend.headers["Content-Type"] == "image/png"
    capabilities = requests.get(links["service"][0]["href"], timeout=120)
    assert record["properties"]["wms_layer"].encode() in capabilities.content
    # the coverage when the configuration serves one, the process that makes the product
    coverages = links.get("http://www.opengis.net/def/rel/ogc/1.0/coverage", [])
    assert bool(coverages) == coverage
    if coverage:
        collection = get_json(server, f"/collections/{product}").json()
        assert any(link["rel"].endswith("/coverage") for link in collection["links"])
    related = [link for link in links.get("related", []) if "/processes/" in link["href"]]
    if process is None:
        assert not related
    else:
        description = requests.get(related[0]["href"], params={"f": "json"}, timeout=60)
        assert description.status_code == 200 and description.json()["id"] == process
    licence = requests.get(links["license"][0]["href"], timeout=60)
    assert licence.status_code == 200


def test_records_are_bilingual(server):
    french = get_json(server, "/collections/products/items/guyane-landcover")
    english = get_json(server, "/collections/products/items/guyane-landcover", lang="en")
    header = get_json(server, "/collections/products/items/guyane-landcover",
                      headers={"Accept-Language": "en"})
    assert french.headers["Content-Language"] == "fr"
    assert english.headers["Content-Language"] == header.headers["Content-Language"] == "en"
    assert french.json()["properties"]["title"].startswith("Occupation du sol")
    assert english.json()["properties"]["title"].startswith("Sentinel-2 land cover")
    assert header.json()["properties"]["title"] == english.json()["properties"]["title"]
    assert "forêt" not in english.json()["properties"]["description"]


def ids(response):
    return {feature["id"] for feature in response.json()["features"]}


def test_search(server, records):
    every = {r["id"] for r in records["features"]}
    guyane = ids(get_json(server, "/collections/products/items", bbox="-52.6,4.7,-52.3,5.0"))
    assert guyane == {i for i in every if i.startswith("guyane-")}
    # 2024-05-17 is the only date in May: Brittany's products, except its change (after it)
    may = ids(get_json(server, "/collections/products/items",
                       datetime="2024-05-01T00:00:00Z/2024-05-20T23:59:59Z"))
    assert may == {i for i in every if i.startswith("bretagne-")} - {"bretagne-ndvi-change"}
    assert ids(get_json(server, "/collections/products/items", kind="classification")) == {
        "bretagne-landcover", "guyane-landcover"}
    assert ids(get_json(server, "/collections/products/items", q="déforestation")) == {
        "bretagne-ndvi-change", "guyane-ndvi-change"}
    cql = get_json(server, "/collections/products/items",
                   filter="kind = 'change' AND area = 'guyane'")
    assert ids(cql) == {"guyane-ndvi-change"}
    hits = get_json(server, "/collections/products/items", index="NDVI").json()
    assert {f["id"] for f in hits["features"]} == {
        "bretagne-ndvi", "guyane-ndvi", "bretagne-ndvi-change", "guyane-ndvi-change"}


@pytest.mark.parametrize("path, status", [
    ("/collections/products/items/nothing", 404),
    ("/collections/products/items?datetime=not-a-date", 400),
    ("/collections/products/items?filter=nope%20%3D%201", 400),
])
def test_search_errors(server, path, status):
    response = requests.get(f"{server.url}{path}", params={"f": "json"}, timeout=60)
    assert response.status_code == status
    assert response.json()["description"]


def test_collection_describedby(server):
    collection = get_json(server, "/collections/products").json()
    [described] = [link for link in collection["links"] if link["rel"] == "describedby"]
    root = etree.fromstring(requests.get(described["href"], timeout=60).content)
    assert root.xpath("gmd:hierarchyLevel/gmd:MD_ScopeCode/@codeListValue",
                      namespaces=GMD) == ["series"]


# --- WMS: classification -------------------------------------------------------------------

@pytest.mark.parametrize("area", AREAS)
def test_classification_map_matches_the_rules_computed_from_the_cogs(server, sample_dir, area):
    rgba = whole_area_map(server, f"{area}:LC.LandCoverRaster")  # default TIME: the preset's
    got = colour_codes(rgba, RULES_LEGEND.colours)
    assert np.all((rgba[..., 3] == 0) | (got > 0)), "colours outside the legend"
    expected, _ = rules_from_cogs(sample_dir, area, CLEAR[area])
    shown = got > 0
    assert shown.mean() > 0.95
    agreement = (got[shown] == expected[shown]).mean()
    assert agreement > 0.999, agreement
    # and the classes mean something: they agree with the land-cover truth away from changes
    with rasterio.open(sample_dir / "truth" / f"landcover-{area}.tif") as ds:
        truth = TRUTH_TO_RULES[ds.read(1)]
    changed, _patch, _ha = truth_change(sample_dir, area)
    keep = shown & ~changed
    assert (got[keep] == truth[keep]).mean() > 0.9


def test_classification_other_date_and_crs(server):
    common = dict(REQUEST="GetMap", LAYERS="bretagne:LC.LandCoverRaster", STYLES="land-cover",
                  CRS="EPSG:3857", BBOX="-176400,6125200,-174400,6127200", WIDTH=128,
                  HEIGHT=128, FORMAT="image/png", TRANSPARENT="TRUE")
    summer = wms(server, TIME="2024-08-25", **common)
    composite = wms(server, TIME="2024-06-01/2024-08-31", **common)
    for response in (summer, composite):
        assert response.status_code == 200, response.text[:300]
        rgba = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
        codes = colour_codes(rgba, RULES_LEGEND.colours)
        assert np.all((rgba[..., 3] == 0) | (codes > 0)) and (codes > 0).mean() > 0.9


def test_classification_getfeatureinfo(server, sample_dir):
    x0, y0, epsg = GRIDS["guyane"]
    expected, indices = rules_from_cogs(sample_dir, "guyane", CLEAR["guyane"])
    names = {code: RULES_LEGEND.names[code] for code in RULES_LEGEND.names}
    rng = np.random.default_rng(3)
    picks = [(int(r), int(c)) for r, c in zip(rng.integers(50, 950, 4), rng.integers(50, 950, 4))]
    water = np.argwhere(expected == 1)
    picks.append(tuple(int(v) for v in water[len(water) // 2]))
    for row, col in picks:
        # a 100 m map around the pixel, on the native grid: pixel (5, 5) is (row, col)
        left, top = x0 + (col - 5) * 10, y0 - (row - 5) * 10
        for language, lang in (("fre", "fr"), ("eng", "en")):
            response = wms(server, REQUEST="GetFeatureInfo", LAYERS="guyane:LC.LandCoverRaster",
                           QUERY_LAYERS="guyane:LC.LandCoverRaster", STYLES="",
                           CRS=f"EPSG:{epsg}", BBOX=f"{left},{top - 100},{left + 100},{top}",
                           WIDTH=10, HEIGHT=10, I=5, J=5, INFO_FORMAT="application/json",
                           LANGUAGE=language)
            assert response.status_code == 200, response.text
            properties = response.json()["features"][0]["properties"]
            code = int(expected[row, col])
            assert code > 0  # a clear date: every pixel has a class
            assert properties["class"] == code, (row, col)
            assert properties["label"] == names[code][lang]
            assert properties["NDVI"] == pytest.approx(indices["ndvi"][row, col], abs=1e-4)
            assert properties["dates"] == [CLEAR["guyane"]]
    text = wms(server, REQUEST="GetFeatureInfo", LAYERS="guyane:LC.LandCoverRaster",
               QUERY_LAYERS="guyane:LC.LandCoverRaster", STYLES="", CRS=f"EPSG:{epsg}",
               BBOX=f"{x0},{y0 - 100},{x0 + 100},{y0}", WIDTH=10, HEIGHT=10, I=5, J=5,
               INFO_FORMAT="text/html")
    page = html.fromstring(text.content)
    assert page.xpath("//th[text()='label']/following-sibling::td/text()")


# --- WMS: change -----------------------------------------------------------------------------

@pytest.mark.parametrize("area", AREAS)
def test_change_layer_shows_the_known_change(server, sample_dir, area):
    """Default TIME (the preset's "after"): the known change is the only patch, at its area."""
    rgba = whole_area_map(server, f"{area}:NDVI-change")
    loss = colour_codes(rgba, {1: RED}) == 1
    gain = colour_codes(rgba, {1: GREEN}) == 1
    changed, _patch, area_ha = truth_change(sample_dir, area)
    assert not gain.any()
    assert loss.sum() / 100 == pytest.approx(area_ha, rel=0.05)  # 10 m pixels → ha
    assert (loss & changed).sum() / changed.sum() > 0.95
    assert (loss & ~changed).sum() / loss.sum() < 0.05
    assert (rgba[..., 3] == 0).sum() == (~loss).sum()  # stable and no data are transparent


def test_change_time_chooses_the_after_period(server, sample_dir):
    changed, _patch, _ha = truth_change(sample_dir, "guyane")
    later = whole_area_map(server, "guyane:NDVI-change", time="2024-10-21")
    loss = colour_codes(later, {1: RED}) == 1
    assert (loss & changed).sum() / changed.sum() > 0.9  # still bare in October
    period = whole_area_map(server, "guyane:NDVI-change", time="2024-08-01/2024-09-30")
    assert ((colour_codes(period, {1: RED}) == 1) & changed).sum() / changed.sum() > 0.9
    # dates of the "before" period are not in the layer's time dimension
    x0, y0, epsg = GRIDS["guyane"]
    response = wms(server, REQUEST="GetMap", LAYERS="guyane:NDVI-change", STYLES="",
                   CRS=f"EPSG:{epsg}", BBOX=f"{x0},{y0 - 1000},{x0 + 1000},{y0}", WIDTH=64,
                   HEIGHT=64, FORMAT="image/png", TIME="2024-07-13")
    root = etree.fromstring(response.content)
    assert root.find("{http://www.opengis.net/ogc}ServiceException").get(
        "code") == "InvalidDimensionValue"


def test_change_getfeatureinfo_in_the_clearing(server, sample_dir):
    changed, patch, _ha = truth_change(sample_dir, "guyane")
    x, y = patch.representative_point().coords[0]
    common = dict(REQUEST="GetFeatureInfo", LAYERS="guyane:NDVI-change",
                  QUERY_LAYERS="guyane:NDVI-change", STYLES="", CRS="EPSG:32622",
                  BBOX=f"{x - 50},{y - 50},{x + 50},{y + 50}", WIDTH=10, HEIGHT=10, I=5, J=5,
                  INFO_FORMAT="application/json")
    inside = wms(server, LANGUAGE="fre", **common).json()["features"][0]["properties"]
    assert inside["class"] == 2 and inside["label"] == "perte"
    assert inside["delta"] < -0.5 and inside["before"] > 0.8 and inside["after"] < 0.3
    assert inside["delta"] == pytest.approx(inside["after"] - inside["before"], abs=1e-5)
    assert inside["before_dates"] == "2024-07-13" and inside["dates"] == ["2024-08-12"]
    far = dict(common, BBOX=f"{x + 1950},{y - 50},{x + 2050},{y + 50}")
    outside = wms(server, LANGUAGE="eng", **far).json()["features"][0]["properties"]
    assert outside["class"] == 1 and outside["label"] == "stable"
    assert abs(outside["delta"]) < 0.2


# --- WMS: capabilities and legends -----------------------------------------------------------

def test_capabilities_of_the_derived_layers(server, capabilities):
    for name in DERIVED:
        [layer] = capabilities.xpath(f"//w:Layer[w:Name='{name}']", namespaces=WMS_NS)
        for tag in ("Title", "Abstract", "KeywordList", "EX_GeographicBoundingBox",
                    "Dimension", "MetadataURL", "Style/w:LegendURL"):
            assert layer.find(f"w:{tag}", WMS_NS) is not None, (name, tag)
        url = layer.find("w:MetadataURL/w:OnlineResource", WMS_NS).get(
            f"{{{WMS_NS['xlink']}}}href")
        record = etree.fromstring(requests.get(url, timeout=60).content)
        identifier = layer.findtext("w:Identifier", namespaces=WMS_NS)
        assert record.xpath("gmd:fileIdentifier/gco:CharacterString/text()",
                            namespaces=GMD) == [identifier]
    [guyane] = capabilities.xpath("//w:Layer[w:Name='guyane:NDVI-change']", namespaces=WMS_NS)
    dimension = guyane.find("w:Dimension", WMS_NS)
    assert dimension.get("default") == "2024-08-12"
    assert min(dimension.text.split(",")) > "2024-07-31"  # after the "before" period
    [lc] = capabilities.xpath("//w:Layer[w:Name='bretagne:LC.LandCoverRaster']",
                              namespaces=WMS_NS)
    assert lc.find("w:Dimension", WMS_NS).get("default") == "2024-06-11"
    english = etree.fromstring(wms(server, REQUEST="GetCapabilities", LANGUAGE="eng").content)
    assert english.xpath("//w:Layer[w:Name='guyane:LC.LandCoverRaster']/w:Title/text()",
                         namespaces=WMS_NS)[0].startswith("Sentinel-2 land cover")
    assert lc.findtext("w:Title", namespaces=WMS_NS).startswith("Occupation du sol")


def test_legends(server, capabilities):
    [layer] = capabilities.xpath("//w:Layer[w:Name='guyane:LC.LandCoverRaster']",
                                 namespaces=WMS_NS)
    url_node = layer.find("w:Style/w:LegendURL", WMS_NS)
    href = url_node.find("w:OnlineResource", WMS_NS).get(f"{{{WMS_NS['xlink']}}}href")
    french = requests.get(href, timeout=60)
    assert french.status_code == 200 and french.headers["Content-Type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(french.content)).convert("RGB"))
    assert image.shape[1::-1] == (int(url_node.get("width")), int(url_node.get("height")))
    for row, code in enumerate(sorted(RULES_LEGEND.names)):
        x, y = swatch_centre(row)
        assert tuple(image[y, x]) == RULES_LEGEND.colours[code]
    english = requests.get(href.replace("LANGUAGE=fre", "LANGUAGE=eng"), timeout=60)
    assert english.content != french.content  # the class names are translated
    change = wms(server, REQUEST="GetLegendGraphic", LAYER="bretagne:NDVI-change",
                 FORMAT="image/png")
    image = np.asarray(Image.open(io.BytesIO(change.content)).convert("RGB"))
    assert tuple(image[swatch_centre(0)[::-1]]) == RED
    assert tuple(image[swatch_centre(1)[::-1]]) == GREEN
