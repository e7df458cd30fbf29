"""Territories by configuration (issue 14): the blocks, their checks, the sources and masks,
and a third territory over another place and another provider, added as one block with
``sentinelle territory add``, checked with ``sentinelle territory check`` and served end to
end by a real server with nothing else changed.

The third territory is the sample's Brittany scenes moved to UTM 31N (near Clermont-Ferrand)
and republished as the Copernicus Data Space Ecosystem publishes Sentinel-2 (STAC 1.1,
``B04_10m`` keys, a cloud-probability band instead of SCL:
:mod:`sentinelle.catalog.sample.variants`).  Numbers are checked against numpy on those COGs.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import requests
import shapely
import yaml
from exactextract import exact_extract
from owslib.wms import WebMapService
from PIL import Image
from rasterio.io import MemoryFile

from sentinelle.catalog.masks import (
    BitMask,
    NoMask,
    ProbabilityMask,
    SclMask,
    parse_mask,
)
from sentinelle.territories.model import TerritoryError, parse_territory
from tests.conftest import REPO, start_server

TERRITORY = "auvergne"
DAY = "2024-05-17"  # a clear date of the sample's Brittany
CLOUDY = "2024-07-21"  # 15 % cloudy over the area
THRESHOLD = 50  # cloud probability threshold of the third territory


# --- blocks and masks, without a server ------------------------------------------------------

BASE = {"title": {"fr": "Essai", "en": "Test"}, "area": {"bbox": [3, 45, 3.1, 45.1]},
        "imagery": {"s2": {"catalog": "/nowhere"}}}


@pytest.mark.parametrize("change, words", [
    ({"area": {"bbox": [3, 45]}}, ["territories.t.area", "4 numbers"]),
    ({"area": {"file": "a.gpkg", "bbox": [3, 45, 4, 46]}}, ["exactly one of"]),
    ({"imagery": {"s2": {"catalog": "/x", "preset": "sentinel-hub"}}},
     ["imagery.s2.preset", "earth-search"]),
    ({"imagery": {"s2": {"catalog": "/x", "mask": "cloud"}}},
     ["imagery.s2", "mask: unknown type 'cloud'"]),
    ({"imagery": {"s2": {"catalog": "/x", "assets": {"rouge": "B04"}}}},
     ["unknown band name(s) rouge"]),
    ({"imagery": {"s2": {"catalog": "/x", "coverages": ["NDXI"]}}}, ["coverages"]),
    ({"imagery": {"s2": {"catalog": "/x", "max_cloud": 140}}}, ["max_cloud", "100"]),
    ({"layers": {"parcels": {"role": "cadastre", "data": "p.gpkg"}}},
     ["layers.parcels.role", "parcels, agricultural-parcels"]),
    ({"layers": {"parcels": {"data": "p.gpkg", "storage_crs": "EPSG:99999"}}},
     ["storage_crs"]),
    ({"colour": "blue"}, ["unknown key(s) colour"]),
])
def test_a_wrong_block_names_the_key_to_fix(change, words):
    with pytest.raises(TerritoryError) as raised:
        parse_territory("t", {**BASE, **change})
    for word in words:
        assert word in str(raised.value)


def test_a_block_gives_collection_ids_and_roles():
    territory = parse_territory("t", {**BASE, "layers": {
        "communes": {"role": "communes", "data": "c.gpkg", "id_field": "code"}}})
    assert territory.optical.collection_id == "t-s2"
    assert territory.optical.index_collection_id("NDVI") == "t-ndvi"
    assert territory.layer("communes").collection_id == "t-communes"
    with pytest.raises(TerritoryError, match="generated twice"):
        parse_territory("t", {**BASE, "layers": {"s2": {"data": "x.gpkg"}}})


def test_masks_say_what_they_hide():
    scl = np.array([[0, 4, 8], [9, 3, 11]], dtype="uint8")
    assert SclMask().hidden(scl).tolist() == [[True, False, True], [True, True, True]]
    assert SclMask().cloudy(scl).tolist() == [[False, False, True], [True, True, False]]
    clm = np.array([[0, 1, 2], [4, 128, 0]], dtype="uint8")
    assert BitMask().hidden(clm).tolist() == [[False, True, True], [True, True, False]]
    only_shadows = parse_mask({"type": "theia-clm", "bits": [2, 3]})
    assert only_shadows.hidden(clm).tolist() == [[False, False, False], [True, False, False]]
    probability = np.array([[0, 49, 50], [99, 255, 10]], dtype="uint8")
    mask = parse_mask({"type": "cloud-probability", "threshold": 50, "nodata": 255})
    assert isinstance(mask, ProbabilityMask) and mask.knows_nodata
    assert mask.hidden(probability).tolist() == [[False, False, True], [True, True, False]]
    assert mask.observed(probability).tolist() == [[True, True, True], [True, False, True]]
    assert isinstance(parse_mask("none"), NoMask) and not parse_mask("none").masks
    assert parse_mask(None, "theia-clm").band == "clm"
    for bad, word in [({"type": "scl", "classes": ["fog"]}, "unknown SCL class"),
                      ({"type": "cloud-probability", "threshold": 0}, "]0, 100]"),
                      ({"type": "theia-clm", "bits": 512}, "8-bit"),
                      ({"type": "none", "band": "x"}, "unknown option")]:
        with pytest.raises(ValueError, match=word.replace("]", r"\]").replace("[", r"\[")):
            parse_mask(bad)


@pytest.mark.shared
def test_earth_search_v0_items_get_their_tile_and_preset(shared_data):
    from sentinelle.catalog.presets import guess_preset
    from sentinelle.catalog.scenes import scene_from_item

    item = json.loads((shared_data / "stac-items" /
                       "rio-tiler-crs__earth-search-v0__S2A_34SGA_20200318_0_L2A.json")
                      .read_text())
    preset, reason = guess_preset(item)
    assert preset.name == "earth-search-v0" and "Earth Search v0" in reason
    scene = scene_from_item(item, preset)
    assert scene.mgrs_tile == "34SGA"  # UTM zone from proj:epsg, band and square from v0
    assert scene.assets["red"].source_key == "B04" and scene.assets["scl"].source_key == "SCL"
    for name, expected in [
        ("pystac-client__earth-search-v1__S2A_13TDE_20231008_0_L2A.json", "earth-search"),
        ("xcube-stac__cdse__S2B_MSIL2A_20200705T101559_N0500_R065_T32TNT_20230530T175912.json",
         "cdse"),
        ("odc-stac__S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json",
         "planetary-computer")]:
        raw = json.loads((shared_data / "stac-items" / name).read_text())
        assert guess_preset(raw)[0].name == expected, name


# --- the third territory: added, checked, served ------------------------------------------------

def run_cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentinelle.cli", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def cdse(sample_dir, tmp_path_factory):
    """The sample's Brittany republished CDSE-style in UTM 31N (catalog, vectors, truth)."""
    from sentinelle.catalog.sample.variants import republish_cdse

    return republish_cdse(sample_dir, tmp_path_factory.mktemp("cdse"))


@pytest.fixture(scope="module")
def third_config(cdse, sample_dir, tmp_path_factory):
    """The repository's configuration plus the third territory, written by `territory add`
    as an administrator would run it."""
    import os

    work = tmp_path_factory.mktemp("third")
    config = work / "pygeoapi-config.yml"
    config.write_text((REPO / "pygeoapi-config.yml").read_text("utf-8"), "utf-8")
    vectors = cdse["vectors"]
    env = dict(os.environ, SENTINELLE_DATA=str(sample_dir),
               SENTINELLE_CATALOG=str(sample_dir / "catalog"))
    env.pop("PYGEOAPI_CONFIG", None)
    env.pop("SENTINELLE_CONFIG", None)
    added = run_cli(
        "territory", "add", TERRITORY, "--config", config,
        "--title", "Puy-de-Dôme (essai, données déplacées)",
        "--title-en", "Puy-de-Dôme (test, moved data)",
        "--area", vectors / "bretagne-communes.gpkg",
        "--catalog", cdse["catalog"], "--preset", "cdse",
        "--mask", "cloud-probability", "--asset", "cloud=CLD_20m",
        "--crs", "EPSG:2154",
        "--layer", f"parcels={vectors / 'bretagne-parcels.gpkg'}",
        "--layer", f"communes={vectors / 'bretagne-communes.gpkg'}", env=env)
    assert added.returncode == 0, added.stderr + added.stdout
    # the mask threshold and nodata of this provider: one edit of the block, as documented
    text = config.read_text("utf-8").replace(
        "      mask: cloud-probability\n",
        f"      mask: {{type: cloud-probability, threshold: {THRESHOLD}, nodata: 255}}\n")
    config.write_text(text, "utf-8")
    block = yaml.safe_load(text)["territories"][TERRITORY]
    assert block["imagery"]["s2"]["assets"] == {"cloud": "CLD_20m"}
    assert block["layers"]["parcels"]["storage_crs"] == "EPSG:2154"
    return config, env


def test_add_refuses_a_second_territory_with_the_same_id(third_config, cdse):
    config, env = third_config
    again = run_cli("territory", "add", TERRITORY, "--config", config, "--title", "x",
                    "--bbox", "3,45,3.1,45.1", "--catalog", cdse["catalog"], env=env)
    assert again.returncode == 2 and "already configured" in again.stderr


def test_check_reports_what_the_territory_has(third_config, cdse):
    config, env = third_config
    checked = run_cli("territory", "check", TERRITORY, "--config", config, env=env)
    out = checked.stdout
    assert checked.returncode == 0, out + checked.stderr
    assert "answers: yes" in out and "preset cdse (configured)" in out
    assert f"{len(cdse['dates'])} on {len(cdse['dates'])} date(s)" in out
    assert "red ← B04_10m" in out and "cloud ← CLD_20m" in out
    assert "cloud probability ≥ 50 masked" in out
    assert "tiles 31TEL" in out and "EPSG:32631" in out
    assert "layer parcels" in out and "feature(s)" in out
    assert "OK: the territory is ready to serve" in out


def test_check_says_what_is_missing(third_config, tmp_path):
    config, env = third_config
    broken = tmp_path / "broken.yml"
    text = config.read_text("utf-8").replace("mask: {type: cloud-probability", "mask: {type: scl",
                                              1)
    data = yaml.safe_load(text)
    data["territories"][TERRITORY]["imagery"]["s2"]["mask"] = "scl"
    data["territories"]["nowhere"] = {"title": "Nulle part", "area": {"bbox": [10, 10, 11, 11]},
                                      "imagery": {"s2": {"catalog": str(tmp_path / "none")}}}
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    wrong_mask = run_cli("territory", "check", TERRITORY, "--config", broken, env=env)
    assert wrong_mask.returncode == 1
    assert "the cloud mask band scl" in wrong_mask.stdout and "mask: none" in wrong_mask.stdout
    nothing = run_cli("territory", "check", "nowhere", "--config", broken, env=env)
    assert nothing.returncode == 1 and "does not answer" in nothing.stdout
    unknown = run_cli("territory", "check", "atlantis", "--config", broken, env=env)
    assert unknown.returncode == 1 and "no territory 'atlantis'" in unknown.stdout


@pytest.fixture(scope="module")
def third(third_config, sample_dir, tmp_path_factory):
    config, _env = third_config
    srv = start_server(sample_dir, tmp_path_factory.mktemp("third-server"), config=config)
    yield srv
    srv.stop()


def get(server, path, **params):
    return requests.get(f"{server.url}{path}", params=params, timeout=120)


def cdse_scene(cdse, day):
    return next(i for i in cdse["items"] if f"_{day.replace('-', '')}T" in i)


def numpy_ndvi(cdse, day, *, masked=True):
    """NDVI of ``day`` straight from the republished COGs (10 m grid), cloud probability
    ≥ THRESHOLD (20 m, repeated) and nodata masked."""
    folder = cdse["catalog"] / "sentinel-2-l2a" / cdse_scene(cdse, day)
    with rasterio.open(folder / "B04_10m.tif") as ds:
        red, transform = ds.read(1).astype("float64"), ds.transform
    with rasterio.open(folder / "B08_10m.tif") as ds:
        nir = ds.read(1).astype("float64")
    with rasterio.open(folder / "CLD_20m.tif") as ds:
        cloud = np.repeat(np.repeat(ds.read(1), 2, axis=0), 2, axis=1)
    valid = (red > 0) & (nir > 0)
    if masked:
        valid &= (cloud < THRESHOLD) & (cloud != 255)
    red, nir = red * 1e-4 - 0.1, nir * 1e-4 - 0.1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, (nir - red) / (nir + red), np.nan), transform


@pytest.mark.server
def test_third_territory_features_and_records(third, cdse):
    ids = [c["id"] for c in get(third, "/collections", f="json").json()["collections"]]
    for cid in (f"{TERRITORY}-parcels", f"{TERRITORY}-communes", f"{TERRITORY}-s2",
                f"{TERRITORY}-ndvi", "bretagne-s2", "guyane-ndvi"):
        assert cid in ids
    meta, _, _, fields = pyogrio.raw.read(cdse["vectors"] / "bretagne-parcels.gpkg",
                                          read_geometry=False)
    communes = fields[list(meta["fields"]).index("commune")]
    commune = str(communes[0])
    page = get(third, f"/collections/{TERRITORY}-parcels/items", f="json", limit=1000,
               filter=f"commune = '{commune}'").json()
    assert page["numberMatched"] == int((communes == communes[0]).sum())
    lon, lat = page["features"][0]["geometry"]["coordinates"][0][0]
    assert 2.99 < lon < 3.14 and 45.73 < lat < 45.84  # Puy-de-Dôme, not Brittany
    # its scenes are records of the scene series, with their tile
    west, south, east, north = cdse["bounds"]
    records = get(third, "/collections/sentinel-2-l2a/items", f="json", limit=100,
                  bbox=f"{west},{south},{east},{north}").json()
    found = {r["id"]: r["properties"]["s2:mgrs_tile"] for r in records["features"]}
    assert set(cdse["items"]) <= set(found) and found[cdse["items"][0]] == "31TEL"
    described = get(third, f"/collections/{TERRITORY}-s2", f="json").json()
    assert described["extent"]["temporal"]["interval"][0][0].startswith(cdse["dates"][0])
    assert described["extent"]["spatial"]["bbox"][0][0] == pytest.approx(west, abs=0.01)


@pytest.mark.server
def test_third_territory_coverage_equals_numpy_with_the_probability_mask(third, cdse):
    expected, transform = numpy_ndvi(cdse, CLOUDY)
    # a native-grid bbox of 60 × 40 pixels inside the territory, partly under cloud
    row0, col0 = next((r, c) for r in range(100, 900, 20) for c in range(100, 900, 20)
                      if 0.1 < np.isnan(expected[r:r + 40, c:c + 60]).mean() < 0.9)
    x0, y1 = transform.c + col0 * 10, transform.f - row0 * 10
    bbox = f"{x0},{y1 - 400},{x0 + 600},{y1}"
    resp = get(third, f"/collections/{TERRITORY}-ndvi/coverage", f="GTiff", bbox=bbox,
               **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/32631"}, datetime=CLOUDY)
    assert resp.status_code == 200, resp.text[:300]
    with MemoryFile(resp.content) as memfile, memfile.open() as ds:
        values, got = ds.read(1), ds.transform
        assert ds.crs.to_epsg() == 32631 and ds.tags()["CLOUD_MASKED"] == "yes"
    row, col = round((transform.f - got.f) / 10), round((got.c - transform.c) / 10)
    window = expected[row:row + values.shape[0], col:col + values.shape[1]]
    assert np.isnan(window).sum() > 0  # the date has clouds here: the mask is exercised
    np.testing.assert_array_equal(np.isnan(values), np.isnan(window))
    np.testing.assert_allclose(values[~np.isnan(values)], window[~np.isnan(window)], atol=1e-6)


@pytest.mark.server
def test_third_territory_maps_and_wms_with_time(third, cdse):
    west, south, east, north = cdse["bounds"]
    bbox = f"{west + 0.01},{south + 0.01},{east - 0.01},{north - 0.01}"
    png = get(third, f"/collections/{TERRITORY}-ndvi/map", bbox=bbox, width=200, height=200,
              datetime=DAY)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    alpha = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGBA"))[..., 3]
    assert (alpha > 0).mean() > 0.3
    default = get(third, f"/collections/{TERRITORY}-s2/map", width=64, height=64)
    assert default.status_code == 200  # no bbox: the territory's extent, with data
    wms = WebMapService(f"{third.url}/wms", version="1.3.0", timeout=120)
    layer = wms[f"{TERRITORY}:NDVI"]
    assert layer.timepositions == sorted(cdse["dates"])
    assert "EPSG:2154" in layer.crsOptions and "EPSG:32631" in layer.crsOptions
    expected, transform = numpy_ndvi(cdse, DAY)
    x0, y1 = transform.c + 100 * 10, transform.f - 100 * 10
    image = wms.getmap(layers=[f"{TERRITORY}:NDVI"], srs="EPSG:32631", size=(64, 64),
                       bbox=(x0, y1 - 640, x0 + 640, y1), format="image/png", time=DAY,
                       transparent=True)
    rgba = np.asarray(Image.open(io.BytesIO(image.read())).convert("RGBA"))
    from sentinelle.analysis.render import colorize

    np.testing.assert_array_equal(rgba, colorize(expected[100:164, 100:164], "ndvi"))


@pytest.mark.server
def test_third_territory_every_process(third, cdse, tmp_path):
    def execute(process, inputs):
        return requests.post(f"{third.url}/processes/{process}/execution",
                             json={"inputs": inputs}, timeout=300)

    expected, transform = numpy_ndvi(cdse, DAY)
    x0, y1 = transform.c + 200 * 10, transform.f - 300 * 10
    area = {"bbox": [x0, y1 - 500, x0 + 500, y1], "crs": "EPSG:32631"}
    stats = execute("spectral-index", {"area": area, "datetime": DAY, "format": "json"})
    assert stats.status_code == 200, stats.text
    body = stats.json()
    window = expected[300:350, 200:250]
    assert body["statistics"]["mean"] == pytest.approx(np.nanmean(window), abs=1e-6)
    assert body["cloud_masked"] is True and body["crs"] == "EPSG:32631"
    # NDVI per parcel of one commune, equal to exactextract on the numpy NDVI
    commune = requests.get(f"{third.url}/collections/{TERRITORY}-communes/items",
                           params={"f": "json", "limit": 1}, timeout=60).json()["features"][0]
    code = commune["properties"]["code"]
    zonal = execute("zonal-statistics", {
        "zones": {"collection": f"{TERRITORY}-parcels", "filter": f"commune = '{code}'"},
        "datetime": DAY, "statistics": ["mean"]})
    assert zonal.status_code == 200, zonal.text
    result = zonal.json()
    assert result["cloud_masked"] is True
    features = result["features"]
    # exactextract on the same zones, on a GeoTIFF of the numpy NDVI, in its CRS
    reference = tmp_path / "ndvi.tif"
    with rasterio.open(reference, "w", driver="GTiff", width=expected.shape[1],
                       height=expected.shape[0], count=1, dtype="float64", crs="EPSG:32631",
                       transform=transform, nodata=np.nan) as ds:
        ds.write(expected, 1)
    zones = [{"type": "Feature", "properties": {},
              "geometry": shapely.geometry.mapping(
                  _to_utm31(shapely.geometry.shape(f["geometry"])))} for f in features]
    theirs = exact_extract(str(reference), zones, "mean")
    checked = 0
    for feature, ref in zip(features, theirs):
        got, want = feature["properties"]["mean"], ref["properties"]["mean"]
        if got is not None and want is not None and np.isfinite(want):
            assert got == pytest.approx(want, abs=1e-4)
            checked += 1
    assert checked > 10
    change = execute("change-detection", {"area": area, "before": "2024-04-01/2024-04-30",
                                          "after": "2024-06-01/2024-06-30"})
    assert change.status_code == 200, change.text[:300]
    classes = execute("classification", {"area": area, "datetime": "2024-06-11"})
    assert classes.status_code == 200, classes.text[:300]
    named = execute("spectral-index", {"area": area, "datetime": DAY, "format": "json",
                                       "source": "bretagne-s2"})
    assert named.status_code == 404 and "no Sentinel-2 scene" in named.text


def _to_utm31(geometry):
    from pyproj import Transformer

    to_utm = Transformer.from_crs("OGC:CRS84", 32631, always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(
        to_utm.transform(xy[:, 0], xy[:, 1])))


@pytest.mark.server
def test_third_territory_in_the_dashboard(third, cdse):
    """The dashboard lists the territory (from the server) and draws it."""
    from tests.test_dashboard import Recorder
    from tests.test_html_offline import CHROMIUM, CHROMIUM_ARGS, same_origin

    listed = get(third, "/dashboard/territories.json").json()["territories"]
    entry = next(t for t in listed if t["id"] == TERRITORY)
    assert entry["s2"] == f"{TERRITORY}-s2" and entry["parcels"] == f"{TERRITORY}-parcels"
    assert entry["title"]["en"].startswith("Puy-de-Dôme")
    import shutil

    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"{CHROMIUM} missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        context.route("**/*", lambda route: route.continue_()
                      if same_origin(route.request.url, third.url)
                      or route.request.url.startswith(("data:", "blob:"))
                      else route.abort("blockedbyclient"))
        page = context.new_page()
        rec = Recorder(page, third.url)
        page.goto(f"{third.url}/dashboard?area={TERRITORY}&lang=fr", wait_until="networkidle")
        page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
        page.wait_for_load_state("networkidle")
        options = page.eval_on_selector_all("#area option", "els => els.map(e => e.value)")
        assert TERRITORY in options and "bretagne" in options
        state = page.evaluate("window.sentinelle.state")
        assert state["area"] == TERRITORY and state["dates"] == sorted(cdse["dates"])
        drawn = page.evaluate("window.sentinelle.layers.parcels.getSource().getFeatures()"
                              ".length")
        assert drawn > 100
        rec.assert_clean()
        browser.close()
