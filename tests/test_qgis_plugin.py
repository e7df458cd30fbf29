"""The QGIS plugin in a real headless QGIS (Debian's 3.22, ``/usr/bin/python3``, offscreen),
installed from its zip into a clean profile, against a real Sentinelle server and a stock
pygeoapi server.  Results are compared with the HTTP API's own answers read with rasterio and
csv.  Skipped when QGIS is not installed (``.ci/run`` installs it)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import requests
import shapely
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds

from tests.conftest import start_server
from tests.qgis_helpers import (
    build_zip,
    install_zip,
    qgis_missing,
    run_qgis,
    start_stock_pygeoapi,
)

pytestmark = pytest.mark.server

BRITTANY = [-1.58, 48.08, -1.54, 48.11]
ALG = "sentinelle_processes:sentinelle_test__"
#: every Brittany parcel, one row per parcel and clear date, with quantiles: ~10 s of work
STATISTICS = ("mean", "std", "count", "valid_fraction")
LONG = {"zones_collection": "bretagne-parcels", "datetime": "2024-01-01",
        "datetime_end": "2024-12-31", "temporal": "series",
        "statistics": ["mean", "median", "p10", "p90", "std", "count"]}


@pytest.fixture(scope="module")
def qgis():
    reason = qgis_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def profile(qgis, tmp_path_factory) -> Path:
    """``make qgis-plugin``'s zip installed into a clean QGIS profile (the config root)."""
    root = tmp_path_factory.mktemp("qgis")
    config = root / "config"
    install_zip(build_zip(root / "dist"), config)
    return config


def sentinelle(server) -> list[dict]:
    return [{"name": "Sentinelle test", "url": server.url}]


def extent(bbox, crs="EPSG:4326") -> str:
    """A QGIS extent parameter value (``xmin,xmax,ymin,ymax [CRS]``)."""
    return f"{bbox[0]},{bbox[2]},{bbox[1]},{bbox[3]} [{crs}]"


def run(profile, server, tmp_path, algorithm, params, **extra) -> dict:
    report = run_qgis({"connections": sentinelle(server), "locale": "fr", "actions": [
        {"do": "run", "algorithm": ALG + algorithm, "params": params, **extra}]},
        profile, tmp_path / "qgis")
    return report["actions"][0]


def test_zip_installs_into_a_clean_profile_and_the_provider_appears(profile, server,
                                                                     tmp_path):
    report = run_qgis({"connections": sentinelle(server), "locale": "fr",
                       "actions": [{"do": "list"}]}, profile, tmp_path)
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    assert Path(report["profile"]).resolve() == (profile / "profiles" / "default").resolve()
    assert report["module"].startswith(str(plugins))  # the installed copy, not the repo's
    assert "sentinelle_processes" in report["available_plugins"]
    meta = report["metadata"]
    assert meta["qgisMinimumVersion"] == "3.22" and meta["hasProcessingProvider"] == "yes"
    assert meta["license"] == "MIT" and meta["tracker"].startswith("https://")
    assert (plugins / "sentinelle_processes" / meta["icon"]).exists()
    assert report["started"] is True
    listing = report["actions"][0]
    assert listing["provider"] == "Processus OGC API (Sentinelle)"
    algorithms = {a["id"]: a for a in listing["algorithms"]}
    assert set(algorithms) == {ALG + p for p in (
        "spectral_index", "zonal_statistics", "change_detection", "classification")}
    si = {p["name"]: p for p in algorithms[ALG + "spectral_index"]["params"]}
    assert algorithms[ALG + "spectral_index"]["name"] == "Indice spectral Sentinel-2"
    assert si["area"]["type"] == "extent" and si["area_layer"]["type"] == "source"
    assert "bretagne-communes" in si["area_collection"]["options"]
    assert si["datetime"]["type"] == "datetime" and si["datetime"]["optional"]
    assert si["index"]["options"][0] == "NDVI" and si["index"]["default"] == "NDVI"
    assert (si["max_cloud"]["minimum"], si["max_cloud"]["maximum"]) == (0, 100)
    assert si["crs"]["type"] == "crs" and si["result"]["type"] == "rasterDestination"
    zs = {p["name"]: p for p in algorithms[ALG + "zonal_statistics"]["params"]}
    assert zs["statistics"]["multiple"] and zs["zones_id_field"]["type"] == "field"
    assert zs["result"]["type"] == "vectorDestination" and not zs["datetime"]["optional"]
    cd = {p["name"]: p for p in algorithms[ALG + "change_detection"]["params"]}
    assert [cd[n]["type"] for n in ("changes", "raster", "summary", "png")] == [
        "vectorDestination", "rasterDestination", "fileDestination", "fileDestination"]


def test_spectral_index_on_an_extent_equals_the_http_geotiff(profile, server, tmp_path):
    out = tmp_path / "ndvi.tif"
    report = run(profile, server, tmp_path, "spectral_index", {
        "area": extent(BRITTANY), "datetime": "2024-05-17", "index": "NDVI",
        "result": str(out)})
    assert report["error"] is None, report
    assert report["layers"]["result"] == {"valid": True, "type": "raster", "bands": 1,
                                          "renderer": "singlebandgray", "crs": "EPSG:32630"}
    assert report["progress"][-1] == 100
    http = requests.post(f"{server.url}/processes/spectral-index/execution", json={
        "inputs": {"area": BRITTANY, "datetime": "2024-05-17", "index": "NDVI"}}, timeout=120)
    assert http.status_code == 200
    with MemoryFile(http.content) as memory, memory.open() as expected, \
            rasterio.open(report["results"]["result"]) as actual:
        assert actual.crs == expected.crs and actual.transform == expected.transform
        a, e = actual.read(1), expected.read(1)
        assert np.isfinite(e).sum() > 50_000
        np.testing.assert_array_equal(a, e)  # NaN where NaN, every value the same


def http_csv(server, zones) -> list[dict]:
    response = requests.post(f"{server.url}/processes/zonal-statistics/execution", json={
        "inputs": {"zones": zones, "datetime": "2024-05-17", "format": "csv"}}, timeout=120)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def test_zonal_statistics_on_a_parcel_layer_csv_equals_the_http_csv(profile, server,
                                                                     sample_dir, tmp_path):
    gpkg = sample_dir / "vectors" / "bretagne-parcels.gpkg"
    report = run(profile, server, tmp_path, "zonal_statistics", {
        "zones_id_field": "id", "datetime": "2024-05-17", "format": "csv",
        "statistics": ["mean", "std", "count", "valid_fraction"],
        "result": str(tmp_path / "zones.gpkg")},
        layers={"zones": f"{gpkg}|layername=bretagne-parcels|subset=\"commune\" = '35051'"})
    assert report["error"] is None, report
    actual = list(csv.DictReader(io.StringIO(
        Path(report["results"]["result_file"]).read_text())))
    # the independent route: the same parcels read with pyogrio, reprojected with pyproj and
    # sent inline to the HTTP API
    meta, _, wkb, columns = pyogrio.raw.read(gpkg, where="commune = '35051'")
    to_crs84 = Transformer.from_crs(meta["crs"], "OGC:CRS84", always_xy=True)
    geometries = shapely.transform(shapely.from_wkb(wkb), lambda xy: np.column_stack(
        to_crs84.transform(xy[:, 0], xy[:, 1])))
    names = list(meta["fields"])
    inline = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": str(columns[names.index("id")][n]),
         "properties": {name: columns[i][n].item() if hasattr(columns[i][n], "item")
                        else columns[i][n] for i, name in enumerate(names)},
         "geometry": json.loads(shapely.to_geojson(geometry))}
        for n, geometry in enumerate(geometries)]}
    expected = http_csv(server, inline)
    assert actual and list(actual[0]) == list(expected[0])  # the same columns, same order
    assert [r["id"] for r in actual] == [r["id"] for r in expected] and len(actual) > 500
    for got, want in zip(actual, expected):
        for column, value in want.items():
            if column in STATISTICS:
                assert float(got[column]) == pytest.approx(float(value), rel=1e-6, abs=1e-9), \
                    (got["id"], column)
            else:
                assert got[column] == value, (got["id"], column)
    # and the same parcels as the server's own collection give the same means (the zones'
    # edges then go 2154 → UTM without CRS84, so slivers of neighbouring pixels may differ)
    served = http_csv(server, {"collection": "bretagne-parcels", "filter": "commune = '35051'"})
    assert [r["id"] for r in served] == [r["id"] for r in actual]
    assert [float(r["mean"]) for r in actual] == pytest.approx(
        [float(r["mean"]) for r in served], abs=1e-3)
    joined = report["layers"]["result"]
    assert joined["valid"] and joined["features"] == len(expected) and joined["geometry"] == 2
    assert {"id", "commune", "mean", "std", "count"} <= set(joined["fields"])


def test_change_detection_gives_polygons_as_a_valid_layer(profile, server, sample_dir,
                                                          tmp_path):
    with rasterio.open(sample_dir / "truth" / "landcover-guyane.tif") as truth:
        west, south, east, north = transform_bounds(truth.crs, "EPSG:4326", *truth.bounds)
    bbox = [math.floor(west * 1000) / 1000, math.floor(south * 1000) / 1000,
            math.ceil(east * 1000) / 1000, math.ceil(north * 1000) / 1000]
    periods = {"before": "2024-07-01/2024-07-31", "after": "2024-08-01/2024-08-31"}
    report = run(profile, server, tmp_path, "change_detection", {
        "area": extent(bbox), "before": "2024-07-01", "before_end": "2024-07-31",
        "after": "2024-08-01", "after_end": "2024-08-31",
        "changes": str(tmp_path / "changes.gpkg"), "classes": str(tmp_path / "classes.tif"),
        "summary": str(tmp_path / "summary.json")})
    assert report["error"] is None, report
    http = requests.post(f"{server.url}/processes/change-detection/execution", json={
        "inputs": {"area": bbox, **periods}, "outputs": {"changes": {}, "summary": {}}},
        timeout=300).json()
    layer = report["layers"]["changes"]
    assert layer["valid"] and layer["geometry"] == 2  # polygons
    assert layer["features"] == len(http["changes"]["features"]) >= 1
    assert {"type", "area_ha", "mean_delta"} <= set(layer["fields"])
    geojson = json.loads(Path(report["results"]["changes_file"]).read_text())
    assert sorted(f["properties"]["area_ha"] for f in geojson["features"]) == sorted(
        f["properties"]["area_ha"] for f in http["changes"]["features"])
    assert json.loads(Path(report["results"]["summary"]).read_text()) == http["summary"]
    # the classes raster carries its legend: a paletted style with the class names
    assert report["layers"]["classes"]["renderer"] == "paletted"
    qml = (tmp_path / "classes.qml").read_text()
    assert "loss" in qml and "gain" in qml


def test_cancel_dismisses_the_server_job_within_10_s(profile, server, tmp_path):
    report = run(profile, server, tmp_path, "zonal_statistics",
                 dict(LONG, result=str(tmp_path / "long.gpkg")),
                 cancel={"url": server.url, "process": "zonal-statistics"})
    assert report["canceled"] and report.get("job_id"), report
    assert report["results"] == {} and report["error"] is None
    status = requests.get(f"{server.url}/jobs/{report['job_id']}", params={"f": "json"},
                          timeout=30).json()
    assert status["status"] == "dismissed", status
    assert report["finished_at"] - report["canceled_at"] < 10
    assert any("dismissed" in line for line in report["log"])


def test_a_server_error_shows_the_servers_message_and_fails_cleanly(profile, server,
                                                                    tmp_path):
    inputs = {"area": BRITTANY, "datetime": "2023-05-17"}
    report = run(profile, server, tmp_path, "spectral_index", {
        "area": extent(BRITTANY), "datetime": "2023-05-17",
        "result": str(tmp_path / "none.tif")})
    http = requests.post(f"{server.url}/processes/spectral-index/execution",
                         json={"inputs": inputs}, timeout=60)
    assert http.status_code == 404
    message = http.json()["description"]
    assert report["error"] and message in report["error"]
    assert any(message in error for error in report["errors"])  # the feedback's error
    assert "Traceback" not in report["error"] and report["results"] == {}
    assert not (tmp_path / "none.tif").exists()


def test_a_territorys_layers_in_one_click(profile, server, tmp_path):
    """WMS groups are territories: their WMS layers come with the time dimension (WMS-T), and
    the OGC API Features collections inside their extent come with them."""
    report = run_qgis({"connections": sentinelle(server), "locale": "fr", "actions": [
        {"do": "territory", "url": server.url, "title": "Guyane"}]}, profile, tmp_path)
    found = report["actions"][0]
    capabilities = requests.get(f"{server.url}/wms", params={
        "SERVICE": "WMS", "REQUEST": "GetCapabilities", "VERSION": "1.3.0"}, timeout=60).text
    assert len(found["territories"]) == 2
    wms = [layer for layer in found["layers"] if layer["provider"] == "wms"]
    features = [layer for layer in found["layers"] if layer["provider"] == "OAPIF"]
    assert wms and all(layer["valid"] and layer["temporal"] for layer in wms)
    assert all("layers=guyane:" in layer["source"] for layer in wms)
    assert all(f"<Name>{layer['source'].split('layers=')[1].split('&')[0]}</Name>"
               in capabilities for layer in wms)
    typenames = {layer["source"].split("typename='")[1].split("'")[0] for layer in features}
    assert typenames == {"guyane-parcels", "guyane-communes"}
    for layer in features:
        typename = layer["source"].split("typename='")[1].split("'")[0]
        items = requests.get(f"{server.url}/collections/{typename}/items",
                             params={"f": "json", "limit": 1}, timeout=60).json()
        assert layer["valid"] and layer["features"] == items["numberMatched"]


API_KEY = "qgis-plugin-test-key-0123456789"


@pytest.fixture(scope="module")
def secured(qgis, sample_dir, tmp_path_factory):
    """A Sentinelle server whose zonal-statistics needs an API key."""
    workdir = tmp_path_factory.mktemp("secured")
    config = workdir / "access.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "realm": "Sentinelle-test", "default": "open",
        "processes": {"zonal-statistics": ["api-key"]},
        "api_keys": [{"id": "qgis", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]}))
    srv = start_server(sample_dir, workdir, {
        "SENTINELLE_ACCESS_CONFIG": str(config),
        "SENTINELLE_JOBS_DB": str(workdir / "jobs.tinydb"),
        "SENTINELLE_RESULTS": str(workdir / "results")})
    yield srv
    srv.stop()


def test_api_key_from_the_authentication_manager(profile, secured, tmp_path):
    """The key lives in the QGIS authentication database (a Basic configuration's password),
    never in the plugin's settings; without it the server's 401 message is shown."""
    params = {"zones_collection": "bretagne-parcels", "zones_filter": "commune = '35051'",
              "datetime": "2024-05-17", "format": "csv", "result": str(tmp_path / "z.gpkg")}
    report = run_qgis({
        "auth": {"master": "master-password", "configs": [{
            "id": "sntlkey", "method": "Basic",
            "config": {"username": "sentinelle", "password": API_KEY}}]},
        "connections": [
            {"name": "With key", "url": secured.url, "auth": "api-key", "authcfg": "sntlkey"},
            {"name": "Without", "url": secured.url}],
        "locale": "fr", "actions": [
            {"do": "run", "algorithm": "sentinelle_processes:with_key__zonal_statistics",
             "params": params},
            {"do": "run", "algorithm": "sentinelle_processes:without__zonal_statistics",
             "params": params}]}, profile, tmp_path / "qgis")
    assert all(report["auth"]), report["auth"]
    with_key, without = report["actions"]
    assert with_key["error"] is None, with_key
    http = requests.post(f"{secured.url}/processes/zonal-statistics/execution", json={"inputs": {
        "zones": {"collection": "bretagne-parcels", "filter": "commune = '35051'"},
        "datetime": "2024-05-17", "format": "csv"}}, headers={"X-API-Key": API_KEY},
        timeout=120)
    assert Path(with_key["results"]["result_file"]).read_text() == http.text
    refused = requests.post(f"{secured.url}/processes/zonal-statistics/execution",
                            json={"inputs": {}}, timeout=30)
    assert refused.status_code == 401
    assert without["error"] and refused.json()["description"] in without["error"]
    # the plugin's settings name the configuration; the key is nowhere in clear in the
    # profile (the authentication database is encrypted with the master password)
    files = [f for f in (profile / "profiles").rglob("*") if f.is_file()]
    assert any(b"sntlkey" in f.read_bytes() for f in files if f.suffix == ".ini")
    assert not any(API_KEY.encode() in f.read_bytes() for f in files)


def test_stock_pygeoapi_hello_world_lists_and_runs(profile, tmp_path):
    stock = start_stock_pygeoapi(tmp_path / "pygeoapi")
    try:
        out = tmp_path / "echo.json"
        report = run_qgis({"connections": [{"name": "Stock pygeoapi", "url": stock.url}],
                           "locale": "en", "actions": [
            {"do": "list"},
            {"do": "run", "algorithm": "sentinelle_processes:stock_pygeoapi__hello_world",
             "params": {"name": "QGIS", "message": "Bonjour", "echo": str(out)}}]},
            profile, tmp_path / "qgis")
        http = requests.post(f"{stock.url}/processes/hello-world/execution", json={
            "inputs": {"name": "QGIS", "message": "Bonjour"}}, timeout=30).json()
    finally:
        stock.stop()
    listing, result = report["actions"]
    assert listing["provider"] == "OGC API Processes (Sentinelle)"  # the English .qm
    [algorithm] = listing["algorithms"]
    assert algorithm["name"] == "Hello World" and algorithm["group"] == "Stock pygeoapi"
    params = {p["name"]: p for p in algorithm["params"]}
    assert not params["name"]["optional"] and params["message"]["optional"]
    assert result["error"] is None, result
    assert json.loads(out.read_text()) == http == {"id": "echo",
                                                   "value": "Hello QGIS! Bonjour"}
    assert any("Hello QGIS! Bonjour" in line for line in result["log"])  # JSON → the log
