"""Sources of every kind, each declared as a territory block and served by one real server
(issue 14): Theia/MAJA L2A (the real Meuse data: NDVI equal to numpy on the FRE files with
the CLM mask, the forest's 2016 → 2019 decline), the real Earth Search Croatia extract, a
Level-1C source without any cloud mask, a float32 NDVI product on a grid that is not
Sentinel-2's (``grid: native``: zonal means equal exactextract on the file), and a territory
whose source holds nothing over it (explained, never a 500 or a silent empty answer).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.features
import requests
import shapely
import yaml
from exactextract import exact_extract
from owslib.wms import WebMapService
from PIL import Image
from pyproj import Transformer
from rasterio.io import MemoryFile

from tests.conftest import REPO, SHARED, start_server

pytestmark = pytest.mark.server

MEUSE = SHARED / "theia-l2a-meuse"
CROATIA = SHARED / "earthsearch-v1-croatia"
PRODUCT = "rennes"  # the territory of the NDVI product
L1C = "guyane-l1c"


def theia_area() -> dict:
    """The Meuse extract's bounds in its own CRS (from one of its files)."""
    path = next(MEUSE.glob("SENTINEL2*/*_FRE_B4.tif"))
    with rasterio.open(path) as ds:
        return {"bbox": list(ds.bounds), "crs": f"EPSG:{ds.crs.to_epsg()}"}


def forest_layer(folder) -> str:
    """The BD Forêt mask of the Meuse extract as polygons (a GeoPackage, UTM 31N)."""
    with rasterio.open(MEUSE / "BDForet_ZoneTest.tif") as ds:
        mask = ds.read(1)
        shapes = [shapely.geometry.shape(g) for g, v in rasterio.features.shapes(
            mask, mask=mask == 1, transform=ds.transform) if v == 1]
    forest = shapely.union_all(shapes)
    path = folder / "meuse-forest.gpkg"
    pyogrio.raw.write(path, shapely.to_wkb(np.array([forest], dtype=object)),
                      field_data=[np.array(["bdforet"], dtype=object)], fields=["id"],
                      crs="EPSG:32631", layer="meuse-forest", geometry_type="MultiPolygon",
                      driver="GPKG")
    return str(path)


@pytest.fixture(scope="module")
def built(sample_dir, tmp_path_factory):
    """The configuration: the repository's, plus one territory per kind of source."""
    from sentinelle.catalog.sample.variants import ndvi_series, republish_l1c

    work = tmp_path_factory.mktemp("sources")
    l1c = republish_l1c(sample_dir, work / "l1c")
    product = ndvi_series(sample_dir, work / "ndvi")
    config = yaml.safe_load((REPO / "pygeoapi-config.yml").read_text("utf-8"))
    areas = str(sample_dir / "vectors" / "areas.geojson")
    territories = config["territories"]
    territories[L1C] = {
        "title": {"fr": "Guyane (niveau 1C)", "en": "French Guiana (Level-1C)"},
        "area": {"file": areas, "filter": "area = 'guyane'"},
        "imagery": {"s2": {"catalog": str(l1c["catalog"]), "preset": "earth-search-l1c"}}}
    territories[PRODUCT] = {
        "title": {"fr": "Rennes (série NDVI d'un partenaire)",
                  "en": "Rennes (a partner's NDVI series)"},
        "area": {"file": areas, "filter": "area = 'bretagne'"},
        "imagery": {"ndvi-series": {
            "catalog": str(product["catalog"]), "preset": "product",
            "product": {"name": "ndvi", "title": {"fr": "NDVI (partenaire)",
                                                   "en": "NDVI (partner)"},
                        "unit": "1", "range": [-1, 1], "ramp": "ndvi"}}},
        "layers": {"parcels": {"role": "parcels", "data": str(
            sample_dir / "vectors" / "bretagne-parcels.gpkg"), "layer": "bretagne-parcels",
            "storage_crs": "EPSG:2154"}}}
    territories["vide"] = {
        "title": "Nulle part (aucune scène)", "area": {"bbox": [4.0, 44.0, 4.05, 44.05]},
        "imagery": {"s2": {"catalog": str(sample_dir / "catalog"), "preset": "earth-search"}}}
    shared = SHARED.is_dir()
    if shared:
        territories["meuse"] = {
            "title": {"fr": "Meuse (Theia)", "en": "Meuse (Theia)"},
            "area": theia_area(),
            "imagery": {"s2": {"catalog": str(MEUSE), "preset": "theia",
                               "assets": {"nir": "FRE_B8A"}}},
            "layers": {"forest": {"role": "land-cover", "data": forest_layer(work),
                                  "storage_crs": "EPSG:32631"}}}
        territories["croatia"] = {
            "title": {"fr": "Croatie (Earth Search)", "en": "Croatia (Earth Search)"},
            "area": {"bbox": [15.9, 45.75, 16.05, 45.85]},
            "imagery": {"s2": {"catalog": str(CROATIA)}}}
    path = work / "config.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return {"config": path, "work": work, "l1c": l1c, "product": product, "shared": shared}


@pytest.fixture(scope="module")
def srv(built, sample_dir, tmp_path_factory):
    server = start_server(sample_dir, tmp_path_factory.mktemp("sources-server"),
                          config=built["config"])
    yield server
    server.stop()


def get(server, path, **params):
    return requests.get(f"{server.url}{path}", params=params, timeout=180)


def execute(server, process, inputs):
    return requests.post(f"{server.url}/processes/{process}/execution",
                         json={"inputs": inputs}, timeout=300)


def overlap(values, got, expected, transform):
    """The parts of ``values`` (on ``got``) and ``expected`` (on ``transform``, the same pixel
    size and lattice) that cover the same pixels."""
    res = transform.a
    row = round((transform.f - got.f) / res)  # row of values[0] in expected
    col = round((got.c - transform.c) / res)
    r0, c0 = max(0, -row), max(0, -col)
    r1 = min(values.shape[0], expected.shape[0] - row)
    c1 = min(values.shape[1], expected.shape[1] - col)
    assert r1 > r0 and c1 > c0, "no overlap"
    return (values[r0:r1, c0:c1], expected[row + r0:row + r1, col + c0:col + c1])


def tiff(content: bytes):
    with MemoryFile(content) as memfile, memfile.open() as ds:
        return ds.read(1), ds.transform, ds.crs, ds.tags()


# --- Theia / MAJA --------------------------------------------------------------------------------

def theia_ndvi(day: str) -> tuple[np.ndarray, object]:
    """NDVI of a Meuse date from the FRE files: B4 at 10 m, B8A at 20 m repeated onto it,
    −10000 = nodata, CLM ≠ 0 masked."""
    folder = next(MEUSE.glob(f"SENTINEL2*_{day.replace('-', '')}-*"))
    with rasterio.open(next(folder.glob("*_FRE_B4.tif"))) as ds:
        red, transform = ds.read(1).astype("float64"), ds.transform
    with rasterio.open(next(folder.glob("*_FRE_B8A.tif"))) as ds:
        nir = np.repeat(np.repeat(ds.read(1).astype("float64"), 2, 0), 2, 1)
    with rasterio.open(next(folder.glob("MASKS/*_CLM_R2.tif"))) as ds:
        clm = np.repeat(np.repeat(ds.read(1), 2, 0), 2, 1)
    valid = (red != -10000) & (nir != -10000) & (clm == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = np.where(valid, (nir - red) / (nir + red), np.nan)
    return ndvi, transform


@pytest.mark.shared
def test_theia_ndvi_per_date_equals_numpy_with_the_clm_mask(srv, built):
    if not built["shared"]:
        pytest.skip("../shared/data is not present")
    dates = sorted({f.name.split("_")[1][:8] for f in MEUSE.glob("SENTINEL2*")})
    checked = 0
    for stamp in dates:
        day = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}"
        expected, transform = theia_ndvi(day)
        resp = get(srv, "/collections/meuse-ndvi/coverage", f="GTiff", datetime=day)
        if not np.isfinite(expected).any():  # 2018-06-20: entirely nodata
            assert resp.status_code == 404 and "nearest date" in resp.text, resp.text[:300]
            continue
        assert resp.status_code == 200, (day, resp.text[:300])
        values, got, crs, tags = tiff(resp.content)
        assert crs.to_epsg() == 32631 and tags["CLOUD_MASKED"] == "yes"
        values, window = overlap(values, got, expected, transform)
        np.testing.assert_array_equal(np.isnan(values), np.isnan(window))
        np.testing.assert_allclose(values[np.isfinite(values)], window[np.isfinite(window)],
                                   atol=1e-6)
        checked += 1
    assert checked == 10


@pytest.mark.shared
def test_theia_forest_series_shows_the_dieback(srv, built):
    if not built["shared"]:
        pytest.skip("../shared/data is not present")
    resp = execute(srv, "zonal-statistics", {
        "zones": {"collection": "meuse-forest"}, "datetime": "2016-01-01/2020-12-31",
        "temporal": "series", "statistics": ["mean", "valid_fraction"]})
    assert resp.status_code == 200, resp.text[:300]
    series = resp.json()["features"][0]["properties"]["series"]
    by_year: dict[str, list[float]] = {}
    for entry in series:
        by_year.setdefault(entry["datetime"][:4], []).append(entry["mean"])
    assert min(by_year["2016"]) > 0.9  # a healthy forest (≈ 0.95)
    assert np.mean(by_year["2019"] + by_year["2020"]) < 0.86  # bark-beetle dieback (≈ 0.83)
    assert np.mean(by_year["2016"]) - np.mean(by_year["2019"]) > 0.08


# --- Earth Search (real Croatia extract) ---------------------------------------------------------

@pytest.mark.shared
def test_earth_search_croatia_extract_is_served(srv, built):
    if not built["shared"]:
        pytest.skip("../shared/data is not present")
    described = get(srv, "/collections/croatia-s2", f="json").json()
    assert described["extent"]["temporal"]["interval"][0][0].startswith("2023-08")
    resp = get(srv, "/collections/croatia-ndvi/coverage", f="GTiff",
               bbox="15.95,45.78,15.98,45.80", datetime="2023-08-13")
    assert resp.status_code == 200, resp.text[:300]
    values, _, crs, _ = tiff(resp.content)
    assert crs.to_epsg() == 32633 and np.isfinite(values).mean() > 0.5
    assert np.nanmax(values) <= 1.0  # Earth Search's declared offset is not applied twice
    records = get(srv, "/collections/sentinel-2-l2a/items", f="json", limit=50,
                  bbox="15.9,45.75,16.05,45.85").json()["features"]
    assert records and {r["properties"]["s2:mgrs_tile"] for r in records} <= {"33TWL",
                                                                              "33TWM"}
    wms = WebMapService(f"{srv.url}/wms", version="1.3.0", timeout=180)
    assert "croatia:NDVI" in wms.contents


# --- Level-1C: no cloud mask ---------------------------------------------------------------------

GUIANA = [-52.47, 4.83, -52.45, 4.85]


def l1c_ndvi(built, day):
    item = next(i for i in built["l1c"]["items"] if day.replace("-", "") in i)
    folder = built["l1c"]["catalog"] / "sentinel-2-l1c" / item
    with rasterio.open(folder / "B04.tif") as ds:
        red, transform = ds.read(1).astype("float64"), ds.transform
    with rasterio.open(folder / "B08.tif") as ds:
        nir = ds.read(1).astype("float64")
    valid = (red > 0) & (nir > 0)
    red, nir = red * 1e-4 - 0.1, nir * 1e-4 - 0.1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, (nir - red) / (nir + red), np.nan), transform


def test_level1c_without_mask_answers_everywhere(srv, built):
    cloudy = "2024-11-25"  # 37 % cloudy: unmasked here, the clouds are in the values
    resp = execute(srv, "spectral-index", {"area": GUIANA, "datetime": cloudy,
                                           "format": "json", "source": f"{L1C}-s2",
                                           "max_cloud": 10})
    assert resp.status_code == 200, resp.text[:300]
    body = resp.json()
    assert body["cloud_masked"] is False
    assert any("no cloud mask" in w for w in body["warnings"])
    assert body["statistics"]["valid_fraction"] == 1.0  # nothing masked
    geotiff = execute(srv, "spectral-index", {"area": GUIANA, "datetime": cloudy,
                                              "source": f"{L1C}-s2"})
    values, transform, _, tags = tiff(geotiff.content)
    assert tags["CLOUD_MASKED"] == "no"
    expected, source = l1c_ndvi(built, cloudy)
    values, window = overlap(values, transform, expected, source)
    finite = np.isfinite(values)
    np.testing.assert_allclose(values[finite], window[finite], atol=1e-6)
    coverage = get(srv, f"/collections/{L1C}-ndvi/coverage", f="GTiff", datetime=cloudy,
                   bbox=",".join(map(str, GUIANA)))
    assert coverage.status_code == 200 and tiff(coverage.content)[3]["CLOUD_MASKED"] == "no"
    image = get(srv, f"/collections/{L1C}-ndvi/map", bbox=",".join(map(str, GUIANA)),
                width=64, height=64, datetime=cloudy)
    assert image.status_code == 200
    assert (np.asarray(Image.open(io.BytesIO(image.content)).convert("RGBA"))[..., 3] > 0).all()
    zonal = execute(srv, "zonal-statistics", {
        "zones": {"collection": "guyane-parcels", "bbox": GUIANA}, "datetime": cloudy,
        "source": f"{L1C}-s2", "statistics": ["mean"]})
    assert zonal.status_code == 200, zonal.text[:300]
    assert zonal.json()["cloud_masked"] is False
    described = get(srv, f"/collections/{L1C}-s2", f="json").json()
    assert "scl" not in [f for f in get(srv, f"/collections/{L1C}-s2/schema",
                                        f="json").json().get("properties", {})]
    assert described["extent"]["temporal"]["interval"][0][0].startswith("2024-01-10")


# --- a float32 product on its own grid ----------------------------------------------------------

def test_product_is_served_as_a_coverage_on_its_own_grid(srv, built):
    day = built["product"]["dates"][0]
    item = built["product"]["catalog"] / "ndvi-series" / f"ndvi-bretagne-{day}" / "ndvi.tif"
    with rasterio.open(item) as ds:
        expected, transform = ds.read(1), ds.transform
    resp = get(srv, f"/collections/{PRODUCT}-ndvi-series/coverage", f="GTiff", datetime=day)
    assert resp.status_code == 200, resp.text[:300]
    values, got, crs, tags = tiff(resp.content)
    assert crs.to_epsg() == 2154 and got.a == 15.0
    assert (got.c - transform.c) % 15 == pytest.approx(0) and tags["CLOUD_MASKED"] == "no"
    values, window = overlap(values, got, expected, transform)
    finite = np.isfinite(values)
    assert finite.mean() > 0.5
    np.testing.assert_array_equal(values[finite], window[finite])  # not resampled
    schema = get(srv, f"/collections/{PRODUCT}-ndvi-series", f="json").json()
    assert schema["extent"]["temporal"]["interval"][0][0].startswith(built["product"]["dates"][0])


def test_product_is_a_wms_layer_with_a_legend(srv, built):
    wms = WebMapService(f"{srv.url}/wms", version="1.3.0", timeout=180)
    name = f"{PRODUCT}:ndvi-series"
    layer = wms[name]
    assert layer.timepositions == built["product"]["dates"]
    west, south, east, north = layer.boundingBoxWGS84
    image = wms.getmap(layers=[name], srs="CRS:84", bbox=(west, south, east, north),
                       size=(128, 128), format="image/png", time=built["product"]["dates"][0],
                       transparent=True)
    rgba = np.asarray(Image.open(io.BytesIO(image.read())).convert("RGBA"))
    assert (rgba[..., 3] > 0).mean() > 0.5
    legend = get(srv, "/wms", SERVICE="WMS", VERSION="1.3.0", REQUEST="GetLegendGraphic",
                 LAYER=name, FORMAT="image/png")
    assert legend.status_code == 200 and legend.headers["Content-Type"] == "image/png"
    info = get(srv, "/wms", SERVICE="WMS", VERSION="1.3.0", REQUEST="GetFeatureInfo",
               LAYERS=name, QUERY_LAYERS=name, CRS="CRS:84", STYLES="",
               BBOX=f"{west},{south},{east},{north}", WIDTH=128, HEIGHT=128, I=64, J=64,
               INFO_FORMAT="application/json", TIME=built["product"]["dates"][0])
    assert info.status_code == 200, info.text[:300]
    assert "ndvi" in json.dumps(info.json())
    records = get(srv, f"/collections/products/items/{PRODUCT}-ndvi-series", f="json").json()
    assert records["properties"]["kind"] == "product"


def test_product_zonal_means_equal_exactextract_on_the_native_grid(srv, built, tmp_path):
    day = built["product"]["dates"][1]
    item = built["product"]["catalog"] / "ndvi-series" / f"ndvi-bretagne-{day}" / "ndvi.tif"
    zones = {"collection": f"{PRODUCT}-parcels", "filter": "commune = '35051'"}
    native = execute(srv, "zonal-statistics", {
        "zones": zones, "datetime": day, "variable": f"{PRODUCT}-ndvi-series",
        "grid": "native", "statistics": ["mean"]})
    assert native.status_code == 200, native.text[:300]
    features = native.json()["features"]
    to_l93 = Transformer.from_crs("OGC:CRS84", 2154, always_xy=True)
    geometries = [shapely.transform(shapely.geometry.shape(f["geometry"]),
                                    lambda xy: np.column_stack(to_l93.transform(xy[:, 0],
                                                                                xy[:, 1])))
                  for f in features]
    theirs = exact_extract(str(item), [{"type": "Feature", "properties": {},
                                        "geometry": shapely.geometry.mapping(g)}
                                       for g in geometries], "mean")
    compared = 0
    for feature, ref in zip(features, theirs):
        mine, want = feature["properties"]["mean"], ref["properties"]["mean"]
        if want is None or not np.isfinite(want):
            continue
        assert mine == pytest.approx(want, abs=1e-6), feature["id"]
        compared += 1
    assert compared > 50
    unknown = execute(srv, "zonal-statistics", {"zones": zones, "datetime": day,
                                                "variable": "ndvi-from-nowhere"})
    assert unknown.status_code == 400 and f"{PRODUCT}-ndvi-series" in unknown.text


# --- a territory with nothing over it -----------------------------------------------------------

def test_a_territory_without_scenes_is_explained_not_a_500(srv):
    described = get(srv, "/collections/vide-s2", f="json")
    assert described.status_code == 200
    body = described.json()
    assert "temporal" not in body["extent"]
    assert "Aucune scène de la source ne couvre encore ce territoire" in body["description"]
    english = get(srv, "/collections/vide-ndvi", f="json", lang="en").json()
    assert "No scene of the source covers this territory yet" in english["description"]
    listed = {c["id"]: c for c in get(srv, "/collections", f="json").json()["collections"]}
    assert "temporal" not in listed["vide-ndvi"]["extent"]
    default_map = get(srv, "/collections/vide-ndvi/map", width=64, height=64)
    assert default_map.status_code == 404 and "no Sentinel-2 scene" in default_map.text
    coverage = get(srv, "/collections/vide-s2/coverage", f="json")
    assert coverage.status_code == 404 and "Sentinel-2 scene" in coverage.text
    outside = get(srv, "/collections/bretagne-ndvi/map", bbox="2,45,2.1,45.1", width=64,
                  height=64, datetime="2024-05-17")
    assert outside.status_code == 404 and "lies outside bretagne-ndvi" in outside.text
    wms = get(srv, "/wms", SERVICE="WMS", VERSION="1.3.0", REQUEST="GetMap",
              LAYERS="vide:OI.OrthoimageCoverage",
              STYLES="", CRS="CRS:84", BBOX="4.0,44.0,4.05,44.05", WIDTH=64, HEIGHT=64,
              FORMAT="image/png")
    assert wms.headers["Content-Type"].startswith("text/xml")
    assert "MissingDimensionValue" in wms.text
