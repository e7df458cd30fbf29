"""OGC API Features and Records as clients see them: a real server process, OWSLib, GDAL's
OAPIF driver (through pyogrio) and plain HTTP, checked against the GeoPackages read directly."""

from __future__ import annotations

import json
from collections import Counter

import pyogrio
import pytest
import requests
import shapely
from owslib.ogcapi.features import Features
from owslib.ogcapi.records import Records

COLLECTIONS = ["bretagne-parcels", "bretagne-agri-parcels", "bretagne-communes",
               "bretagne-planning-zones", "guyane-parcels", "guyane-communes", "sentinel-2-l2a"]
EPSG2154 = "http://www.opengis.net/def/crs/EPSG/0/2154"


@pytest.fixture(scope="module")
def parcels(sample_dir):
    """The Brittany parcels straight from the GeoPackage (Lambert-93)."""
    path = sample_dir / "vectors" / "bretagne-parcels.gpkg"
    meta, _, wkb, fields = pyogrio.raw.read(path)
    names = list(meta["fields"])
    rows = [dict(zip(names, values)) for values in zip(*fields)]
    return {row["id"]: (row, shapely.from_wkb(g)) for row, g in zip(rows, wkb)}


def test_landing_conformance_collections_openapi(server):
    landing = requests.get(f"{server.url}/?f=json", timeout=30)
    assert landing.status_code == 200 and landing.json()["links"]
    html = requests.get(f"{server.url}/?f=html", timeout=30)
    assert html.status_code == 200 and "text/html" in html.headers["Content-Type"]
    conformance = requests.get(f"{server.url}/conformance?f=json", timeout=30).json()
    classes = conformance["conformsTo"]
    assert any("ogcapi-features-1/1.0/conf/core" in c for c in classes)
    assert any("filter" in c for c in classes)
    ids = {c["id"] for c in requests.get(f"{server.url}/collections?f=json", timeout=30)
           .json()["collections"]}
    assert set(COLLECTIONS) <= ids
    openapi = requests.get(f"{server.url}/openapi?f=json", timeout=30)
    assert openapi.status_code == 200 and openapi.json()["openapi"].startswith("3.")


def test_owslib_features_client(server, parcels):
    api = Features(server.url)
    assert set(COLLECTIONS) <= {c["id"] for c in api.collections()["collections"]}
    page = api.collection_items("bretagne-parcels", limit=5)
    assert page["numberMatched"] == len(parcels)
    assert len(page["features"]) == 5
    queryables = api.collection_queryables("bretagne-parcels")
    assert "commune" in queryables["properties"]


def test_gdal_oapif_reads_every_parcel_with_geometry(server, parcels):
    source = f"OAPIF:{server.url}/collections/bretagne-parcels"
    meta, _, wkb, fields = pyogrio.raw.read(source)
    ids = list(fields[list(meta["fields"]).index("id")])
    assert len(ids) == len(parcels) and set(ids) == set(parcels)
    geoms = shapely.from_wkb(wkb)
    assert all(g is not None and not g.is_empty for g in geoms)
    # GDAL asks for the advertised storage CRS (Lambert-93): geometries come back unchanged
    assert "2154" in meta["crs"]
    for feature_id, geom in zip(ids[:50], geoms[:50]):
        assert geom.equals_exact(parcels[feature_id][1], tolerance=0.01)


def test_cql2_filter_on_commune_returns_only_that_commune(server, parcels):
    commune, expected = Counter(row["commune"] for row, _ in parcels.values()).most_common(1)[0]
    response = requests.get(f"{server.url}/collections/bretagne-parcels/items", params={
        "filter": f"commune = '{commune}'", "filter-lang": "cql2-text", "limit": 1000,
        "f": "json"}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["numberMatched"] == expected
    assert {f["properties"]["commune"] for f in body["features"]} == {commune}
    # the same through GDAL, with an attribute filter the server evaluates
    source = f"OAPIF:{server.url}/collections/bretagne-parcels"
    meta, _, _, fields = pyogrio.raw.read(source, where=f"commune = '{commune}'")
    assert len(fields[0]) == expected


def test_cql2_spatial_and_numeric_filters(server, parcels):
    row, geom = next(iter(parcels.values()))
    point = shapely.Point(*shapely.get_coordinates(geom.centroid)[0])
    # the point in Lambert-93, sent with filter-crs
    response = requests.get(f"{server.url}/collections/bretagne-parcels/items", params={
        "filter": f"INTERSECTS(geometry, {point.wkt})", "filter-crs": EPSG2154,
        "f": "json"}, timeout=60)
    assert response.status_code == 200, response.text
    assert [f["id"] for f in response.json()["features"]] == [row["id"]]
    big = requests.get(f"{server.url}/collections/bretagne-parcels/items", params={
        "filter": "area_m2 > 20000", "limit": 1000, "f": "json"}, timeout=60).json()
    expected = sum(1 for r, _ in parcels.values() if r["area_m2"] > 20000)
    assert big["numberMatched"] == expected


@pytest.mark.parametrize("function", ["S_INTERSECTS", "INTERSECTS"])
def test_cql2_text_and_ecql_spatial_functions(server, parcels, function):
    """CQL2 text (S_INTERSECTS) as declared in /conformance, and ECQL (INTERSECTS) for old
    clients, select the same parcel."""
    row, geom = next(iter(parcels.values()))
    point = shapely.Point(*shapely.get_coordinates(geom.centroid)[0])
    response = requests.get(f"{server.url}/collections/bretagne-parcels/items", params={
        "filter": f"{function}(geometry, {point.wkt}) AND commune = '{row['commune']}'",
        "filter-crs": EPSG2154, "filter-lang": "cql2-text", "f": "json"}, timeout=60)
    assert response.status_code == 200, response.text
    assert [f["id"] for f in response.json()["features"]] == [row["id"]]


def test_crs_lambert93_output(server, parcels):
    response = requests.get(f"{server.url}/collections/bretagne-parcels/items",
                            params={"crs": EPSG2154, "limit": 3, "f": "json"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Crs"] == f"<{EPSG2154}>"
    for feature in response.json()["features"]:
        served = shapely.geometry.shape(feature["geometry"])
        original = parcels[feature["id"]][1]
        assert served.equals_exact(original, tolerance=0.01)
        assert 300_000 < served.centroid.x < 400_000  # Lambert-93 eastings east of Rennes


def test_bbox_in_lambert93(server, parcels):
    row, geom = next(iter(parcels.values()))
    minx, miny, maxx, maxy = geom.bounds
    response = requests.get(f"{server.url}/collections/bretagne-parcels/items", params={
        "bbox": f"{minx},{miny},{maxx},{maxy}", "bbox-crs": EPSG2154, "limit": 100,
        "f": "json"}, timeout=30)
    assert response.status_code == 200
    assert row["id"] in {f["id"] for f in response.json()["features"]}


@pytest.mark.parametrize("language, title", [
    ("fr", "Parcelles cadastrales — Bretagne"), ("en", "Cadastral parcels — Brittany")])
def test_language_negotiation(server, language, title):
    response = requests.get(f"{server.url}/collections/bretagne-parcels?f=json",
                            headers={"Accept-Language": language}, timeout=30)
    assert response.status_code == 200
    assert response.json()["title"].startswith(title)
    assert response.headers["Content-Language"].startswith(language)


def test_french_is_the_default_language(server):
    body = requests.get(f"{server.url}/collections/guyane-communes?f=json", timeout=30).json()
    assert body["title"].startswith("Communes — Guyane")


def test_guyane_collections_in_rgfg95(server, sample_dir):
    response = requests.get(f"{server.url}/collections/guyane-parcels/items", params={
        "crs": "http://www.opengis.net/def/crs/EPSG/0/2972", "limit": 1, "f": "json"},
        timeout=30)
    assert response.status_code == 200
    x, y = shapely.geometry.shape(response.json()["features"][0]["geometry"]).centroid.coords[0]
    assert 300_000 < x < 400_000 and 500_000 < y < 600_000  # UTM 22N near Cayenne
    communes = requests.get(f"{server.url}/collections/guyane-communes/items?f=json&limit=100",
                            timeout=30).json()
    assert communes["numberMatched"] >= 10
    assert all(c["properties"]["code"].startswith("973") for c in communes["features"])


# --- Records: the scenes of the catalog -------------------------------------------------------

def test_scene_records(server, sample_dir):
    api = Records(server.url)
    body = api.collection_items("sentinel-2-l2a", limit=100)
    n_items = sum(1 for _ in (sample_dir / "catalog").rglob("*_L2A.json"))
    assert body["numberMatched"] == n_items >= 16
    record = body["features"][0]
    props = record["properties"]
    assert props["type"] == "dataset" and props["datetime"] and "eo:cloud_cover" in props
    assert record["geometry"]["type"] in ("Polygon", "MultiPolygon")
    enclosures = [link for link in record["links"] if link["rel"] == "enclosure"]
    assert len(enclosures) >= 5
    cog = requests.get(enclosures[0]["href"], timeout=30)
    assert cog.status_code == 200 and cog.content[:4] in (b"II*\x00", b"MM\x00*")


def test_scene_records_bbox_and_datetime_filters(server):
    url = f"{server.url}/collections/sentinel-2-l2a/items"
    brittany = requests.get(url, params={"bbox": "-1.6,48.08,-1.5,48.12", "limit": 100,
                                         "f": "json"}, timeout=30).json()
    guiana = requests.get(url, params={"bbox": "-52.5,4.8,-52.45,4.88", "limit": 100,
                                       "f": "json"}, timeout=30).json()
    assert brittany["numberMatched"] >= 8 and guiana["numberMatched"] >= 8
    assert not {f["id"] for f in brittany["features"]} & {f["id"] for f in guiana["features"]}
    summer = requests.get(url, params={"datetime": "2024-06-01T00:00:00Z/2024-08-31T23:59:59Z",
                                       "limit": 100, "f": "json"}, timeout=30).json()
    assert 0 < summer["numberMatched"] < brittany["numberMatched"] + guiana["numberMatched"]
    assert all("2024-06" <= f["properties"]["datetime"][:7] <= "2024-08"
               for f in summer["features"])
    cloudy = requests.get(url, params={"filter": "\"eo:cloud_cover\" > 30", "limit": 100,
                                       "f": "json"}, timeout=30)
    assert cloudy.status_code == 200, cloudy.text
    assert all(f["properties"]["eo:cloud_cover"] > 30 for f in cloudy.json()["features"])


# --- Bad input: a 4xx with a message, never a 500 ----------------------------------------------

@pytest.mark.parametrize("path, params, status, words", [
    ("/collections/nope/items", {}, 404, "not found"),
    ("/collections/bretagne-parcels/items", {"bbox": "1,2,3"}, 400, "bbox"),
    ("/collections/bretagne-parcels/items", {"bbox": "a,b,c,d"}, 400, "bbox"),
    ("/collections/sentinel-2-l2a/items", {"datetime": "2024-13-45"}, 400, "2024-13-45"),
    ("/collections/bretagne-parcels/items", {"datetime": "yesterday"}, 400, "datetime"),
    ("/collections/bretagne-parcels/items", {"filter": "commune = = 'x'"}, 400, "cql"),
    ("/collections/bretagne-parcels/items", {"filter": "password = 'x'"}, 400, "password"),
    ("/collections/bretagne-parcels/items", {"filter": "commune > 5"}, 400, "filter"),
    ("/collections/bretagne-parcels/items", {"limit": "-3"}, 400, "limit"),
    ("/collections/bretagne-parcels/items", {"crs": "EPSG:9999"}, 400, "crs"),
    ("/collections/bretagne-parcels/items/does-not-exist", {}, 404, "does-not-exist"),
    ("/collections/sentinel-2-l2a/items/S2X_nope", {}, 404, "S2X_nope"),
])
def test_bad_input_gets_a_4xx_with_a_message(server, path, params, status, words):
    response = requests.get(f"{server.url}{path}", params={**params, "f": "json"}, timeout=30)
    assert response.status_code == status, response.text
    body = response.json()
    message = json.dumps(body).lower()
    assert words.lower() in message, body
