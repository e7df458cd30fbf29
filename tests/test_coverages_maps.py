"""OGC API Coverages and Maps over the sample, as a client of a real server: pixels are
checked against rasterio/numpy reading the COGs directly (no code of ours on that side)."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import requests
from affine import Affine
from owslib.ogcapi.coverages import Coverages
from PIL import Image
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.windows import from_bounds
from rio_cogeo.cogeo import cog_validate

from sentinelle.analysis.render import true_color

pytestmark = pytest.mark.server

FILES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11",
         "scl": "SCL"}
MASKED = [0, 1, 3, 8, 9, 10, 11]  # SCL classes hidden by default
BRETAGNE = "S2B_30UXU_20240517_0_L2A"
GUYANE = "S2A_22NCL_20240713_0_L2A"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"


def cog(sample_dir: Path, item: str, band: str) -> Path:
    return sample_dir / "catalog" / "sentinel-2-l2a" / item / f"{FILES[band]}.tif"


def read_dn(path: Path, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """The COG's values on a north-up grid nested in its own (10 m grid over 10/20 m COGs)."""
    height, width = shape
    bounds = (transform.c, transform.f + transform.e * height,
              transform.c + transform.a * width, transform.f)
    with rasterio.open(path) as ds:
        window = from_bounds(*bounds, transform=ds.transform)
        return ds.read(1, window=window, out_shape=shape, resampling=Resampling.nearest)


def reflectance(dn: np.ndarray) -> np.ndarray:
    values = dn.astype("float32") * np.float32(0.0001) + np.float32(-0.1)
    return np.where(dn == 0, np.float32(np.nan), values)


def get(server, path, **params):
    return requests.get(f"{server.url}{path}", params=params, timeout=120)


def geotiff(response):
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/tiff"
    memfile = MemoryFile(response.content)
    return memfile.open()


def item_dates(sample_dir: Path, tile: str) -> dict[str, str]:
    """date → item id of one MGRS tile, from the catalog folder names."""
    folder = sample_dir / "catalog" / "sentinel-2-l2a"
    out = {}
    for path in sorted(folder.glob(f"S2*_{tile}_*_0_L2A")):
        stamp = path.name.split("_")[2]
        out[f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}"] = path.name
    return out


# --- (a) one date at native resolution equals the COGs ---------------------------------------

def test_instant_geotiff_equals_the_cogs(server, sample_dir, tmp_path):
    response = get(server, "/collections/bretagne-s2/coverage", f="GTiff",
                   bbox="-1.575,48.085,-1.56,48.095", datetime="2024-05-17")
    (tmp_path / "out.tif").write_bytes(response.content)
    assert cog_validate(tmp_path / "out.tif", quiet=True)[0]
    with geotiff(response) as ds:
        assert ds.crs.to_epsg() == 32630  # the scene's UTM zone by default
        assert ds.res == (10.0, 10.0)
        assert ds.transform.c % 10 == 0 and ds.transform.f % 10 == 0  # on the S2 pixel grid
        assert ds.descriptions == ("blue", "green", "red", "nir", "swir16", "scl")
        assert np.isnan(ds.nodata) and ds.dtypes[0] == "float32"
        assert ds.scales == (1.0,) * 6 and ds.offsets == (0.0,) * 6
        assert ds.tags()["DATES"] == "2024-05-17" and ds.tags()["CLOUD_MASKED"] == "no"
        served = ds.read()
        transform, shape = ds.transform, ds.shape
    assert shape[0] > 50 and shape[1] > 50
    for index, band in enumerate(FILES):
        dn = read_dn(cog(sample_dir, BRETAGNE, band), transform, shape)
        if band == "scl":
            np.testing.assert_array_equal(served[index], dn.astype("float32"))
        else:  # raw values, unmasked, DN × 0.0001 − 0.1
            np.testing.assert_allclose(served[index], reflectance(dn), rtol=0, atol=1e-6,
                                       equal_nan=True)


def test_subset_in_native_crs_with_owslib(server, sample_dir):
    api = Coverages(server.url)
    assert {"bretagne-s2", "bretagne-ndvi", "guyane-s2", "guyane-ndvi"} <= set(api.coverages())
    data = api.coverage("bretagne-s2", properties=["red", "nir"], datetime="2024-05-17",
                        subset={"x": [605000, 605400], "y": [5325000, 5325300]})
    body = json.load(data)
    assert body["type"] == "Coverage"
    axes = body["domain"]["axes"]
    assert (axes["x"]["num"], axes["y"]["num"]) == (40, 30)
    assert axes["x"]["start"] == 605005 and axes["y"]["start"] == 5325295  # pixel centres
    red = np.array(body["ranges"]["red"]["values"], dtype="float64").reshape(30, 40)
    dn = read_dn(cog(sample_dir, BRETAGNE, "red"), Affine(10, 0, 605000, 0, -10, 5325300),
                 (30, 40))
    np.testing.assert_allclose(red, reflectance(dn), atol=1e-6)


# --- (b) an interval gives the masked median ---------------------------------------------------

def test_interval_is_the_masked_median(server, sample_dir):
    response = get(server, "/collections/bretagne-s2/coverage", f="GTiff",
                   bbox="-1.575,48.085,-1.565,48.092", datetime="2024-03-01/2024-09-30",
                   properties="red,nir")
    with geotiff(response) as ds:
        served = ds.read()
        transform, shape = ds.transform, ds.shape
        dates = ds.tags()["DATES"].split(",")
        assert ds.tags()["COMPOSITE"] == "median" and ds.tags()["CLOUD_MASKED"] == "yes"
    items = {d: i for d, i in item_dates(sample_dir, "30UXU").items()
             if "2024-03-01" <= d <= "2024-09-30"}
    assert dates == sorted(items)
    for index, band in enumerate(["red", "nir"]):
        stack = []
        for item in items.values():
            values = reflectance(read_dn(cog(sample_dir, item, band), transform, shape))
            scl = read_dn(cog(sample_dir, item, "scl"), transform, shape)
            stack.append(np.where(np.isin(scl, MASKED), np.nan, values))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            expected = np.nanmedian(np.stack(stack), axis=0)
        assert np.isnan(np.stack(stack)).any()  # the test means something: clouds were masked
        np.testing.assert_allclose(served[index], expected, rtol=0, atol=1e-6, equal_nan=True)


def test_no_datetime_is_the_latest_clear_date(server, sample_dir):
    with open(sample_dir / "truth" / "cloud_fraction.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["area"] == "bretagne"]
    latest_clear = max(r["date"] for r in rows if float(r["cloud_fraction"]) <= 0.20)
    with geotiff(get(server, "/collections/bretagne-s2/coverage", f="GTiff",
                     properties="red")) as ds:  # the whole area
        assert ds.tags()["DATES"] == latest_clear
        assert ds.count == 1 and ds.width >= 1000 and ds.height >= 1000


# --- (c) other CRSs put each value where it belongs -------------------------------------------

@pytest.mark.parametrize("collection, item, epsg, bbox", [
    ("bretagne-s2", BRETAGNE, 2154, "358000,6787000,359500,6788200"),
    ("guyane-s2", GUYANE, 2972, "340500,539500,341700,540700"),
])
def test_reprojected_values_land_where_they_should(server, sample_dir, collection, item, epsg,
                                                   bbox):
    date = item.split("_")[2]
    response = get(server, f"/collections/{collection}/coverage", f="GTiff", bbox=bbox,
                   **{"bbox-crs": f"{EPSG}{epsg}", "properties": "red",
                      "datetime": f"{date[:4]}-{date[4:6]}-{date[6:]}"})
    with geotiff(response) as ds:
        assert ds.crs.to_epsg() == epsg and ds.res == (10.0, 10.0)
        served = ds.read(1)
        transform = ds.transform
    with rasterio.open(cog(sample_dir, item, "red")) as src:
        to_utm = Transformer.from_crs(epsg, src.crs.to_epsg(), always_xy=True)
        rows, cols = np.mgrid[0:served.shape[0]:7, 0:served.shape[1]:7]
        xs, ys = transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
        ux, uy = to_utm.transform(xs, ys)
        fcol, frow = ~src.transform * (np.asarray(ux), np.asarray(uy))
        # away from source pixel edges, nearest neighbour has one answer
        clear = ((fcol % 1 > 0.2) & (fcol % 1 < 0.8) & (frow % 1 > 0.2) & (frow % 1 < 0.8))
        dn = src.read(1)[frow.astype(int)[clear], fcol.astype(int)[clear]]
    got = served[rows.ravel()[clear], cols.ravel()[clear]]
    assert clear.sum() > 50
    np.testing.assert_allclose(got, reflectance(dn), atol=1e-6, equal_nan=True)


# --- (d) maps ---------------------------------------------------------------------------------

def png(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "RGBA"
    return np.asarray(image)


def test_ndvi_map_has_the_asked_size_and_is_transparent_outside(server):
    # a bbox wider than the area (lon/lat, the default bbox-crs)
    rgba = png(get(server, "/collections/bretagne-ndvi/map", bbox="-1.64,48.03,-1.46,48.17",
                   width=300, height=200, datetime="2024-05-17"))
    assert rgba.shape == (200, 300, 4)
    alpha = rgba[..., 3]
    assert (alpha[:8, :] == 0).all() and (alpha[:, :8] == 0).all()  # outside the area
    assert (alpha[90:110, 140:160] == 255).all()  # inside, clear date
    assert len(np.unique(rgba[alpha > 0][:, :3], axis=0)) > 20  # a ramp, not a flat colour
    # web mercator and Lambert-93 bboxes give the asked sizes too
    merc = png(get(server, "/collections/bretagne-ndvi/map", width=256, height=256,
                   bbox="-178000,6118000,-166000,6130000", **{"bbox-crs": f"{EPSG}3857"}))
    assert merc.shape == (256, 256, 4) and (merc[..., 3] == 255).any()


def test_true_colour_map_equals_the_stretch_of_the_cogs(server, sample_dir):
    bounds = (605000, 5325000, 606000, 5325600)  # native 10 m: 100 × 60 px
    rgba = png(get(server, "/collections/bretagne-s2/map", bbox=",".join(map(str, bounds)),
                   width=100, height=60, datetime="2024-05-17",
                   **{"bbox-crs": f"{EPSG}32630"}))
    transform, shape = Affine(10, 0, 605000, 0, -10, 5325600), (60, 100)
    scl = read_dn(cog(sample_dir, BRETAGNE, "scl"), transform, shape)
    bands = [np.where(np.isin(scl, MASKED), np.nan,
                      reflectance(read_dn(cog(sample_dir, BRETAGNE, b), transform, shape)))
             for b in ("red", "green", "blue")]
    np.testing.assert_array_equal(rgba, true_color(*bands))


def test_map_of_a_cloudy_date_is_transparent_under_clouds(server):
    rgba = png(get(server, "/collections/bretagne-s2/map", bbox="-1.618,48.056,-1.482,48.145",
                   width=200, height=200, datetime="2024-10-04"))  # 97 % cloudy
    assert (rgba[..., 3] == 0).mean() > 0.8


def test_legend_from_the_provider(sample_dir, monkeypatch):
    from sentinelle.providers.maps import SentinelMapProvider

    monkeypatch.setenv("SENTINELLE_DATA", str(sample_dir))
    monkeypatch.setenv("SENTINELLE_CATALOG", str(sample_dir / "catalog"))
    monkeypatch.delenv("PYGEOAPI_CONFIG", raising=False)
    definition = {"name": "sentinelle.providers.maps.SentinelMapProvider", "type": "map",
                  "data": str(sample_dir / "catalog"),
                  "options": {"territory": "bretagne", "source": "s2", "index": "NDVI"},
                  "format": {"name": "png", "mimetype": "image/png"}}
    image = Image.open(io.BytesIO(SentinelMapProvider(definition).get_legend()))
    assert image.format == "PNG" and image.width == 300


# --- (e) errors say what to change -------------------------------------------------------------

@pytest.mark.parametrize("path, params, status, words", [
    ("/collections/bretagne-s2/coverage", {"bbox": "2,47,3,48"}, 400, "does not meet the area"),
    ("/collections/bretagne-s2/coverage", {"bbox": "-1.55,48.09,-1.56,48.10"}, 400, "min < max"),
    ("/collections/bretagne-s2/coverage", {"datetime": "2023-05-01"}, 404, "nearest date"),
    ("/collections/bretagne-s2/coverage", {"datetime": "2024-13-45"}, 400, "invalid datetime"),
    ("/collections/bretagne-s2/coverage", {"datetime": "2024-05-17T99"}, 400, "RFC 3339"),
    ("/collections/bretagne-s2/coverage", {"properties": "red,B04"}, 400, "Invalid field"),
    ("/collections/bretagne-s2/coverage",
     {"properties": "scl", "datetime": "2024-03-01/2024-09-30"}, 400, "one date"),
    ("/collections/bretagne-s2/coverage", {}, 413, "f=GTiff"),  # 1002×1002×6 as CoverageJSON
    ("/collections/bretagne-s2/coverage", {"bbox": "-1.6,48.1,-1.59,48.11",
                                           "bbox-crs": "EPSG:99999"}, 400, "unknown CRS"),
    ("/collections/bretagne-s2/coverage",
     {"subset": "x(605000:606000)", "properties": "red"}, 400, "both x"),
    ("/collections/bretagne-ndvi/map", {"width": 5000, "height": 300}, 413, "4096"),
    ("/collections/bretagne-ndvi/map", {"bbox": "-1.6,48.1,-1.59", "width": 10}, 400, "bbox"),
    ("/collections/bretagne-ndvi/map", {"datetime": "2023-05-01"}, 404, "nearest date"),
])
def test_bad_requests_get_a_message(server, path, params, status, words):
    response = get(server, path, **params)
    assert response.status_code == status, response.text
    assert words in response.json()["description"]


@pytest.mark.parametrize("bbox", ["a,48,b,49", "1,2,3"])
def test_malformed_bbox_is_a_client_error(server, bbox):
    """pygeoapi 0.21 answers 500 here; sentinelle.web.compat turns it into a 400."""
    response = get(server, "/collections/bretagne-s2/coverage", bbox=bbox)
    assert response.status_code == 400
    assert "bbox" in response.json()["description"].lower()


def test_legend_route(server):
    response = get(server, "/collections/bretagne-ndvi/map/legend")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("image/png")
    image = Image.open(io.BytesIO(response.content))
    assert image.width > image.height


def test_pixel_budget_gives_413_with_the_limit(sample_dir, tmp_path_factory):
    from tests.conftest import start_server

    small = start_server(sample_dir, tmp_path_factory.mktemp("small-budget"),
                         {"SENTINELLE_MAX_PIXELS": "2000000"})
    try:
        response = get(small, "/collections/bretagne-s2/coverage", f="GTiff",
                       datetime="2024-01-01/2024-12-31", properties="red,nir")
        assert response.status_code == 413, response.text
        assert "2,000,000" in response.json()["description"]
        # the same request on a smaller bbox passes
        ok = get(small, "/collections/bretagne-s2/coverage", f="GTiff",
                 datetime="2024-01-01/2024-12-31", properties="red,nir",
                 bbox="-1.575,48.085,-1.565,48.092")
        assert ok.status_code == 200
        too_big_map = get(small, "/collections/bretagne-ndvi/map", width=4000, height=4000,
                          datetime="2024-01-01/2024-12-31")
        assert too_big_map.status_code == 413
        assert "2,000,000" in too_big_map.json()["description"]
    finally:
        small.process.terminate()
        small.process.wait(timeout=10)


# --- (f) collection metadata ------------------------------------------------------------------

@pytest.mark.parametrize("collection, tile, epsg", [
    ("bretagne-s2", "30UXU", 32630), ("guyane-ndvi", "22NCL", 32622)])
def test_metadata_lists_the_dates_and_the_grid(server, sample_dir, collection, tile, epsg):
    body = get(server, f"/collections/{collection}", f="json").json()
    temporal = body["extent"]["temporal"]
    dates = [d[:10] for d in temporal["grid"]["coordinates"]]
    assert dates == sorted(item_dates(sample_dir, tile))
    assert temporal["interval"][0][0][:10] == dates[0]
    assert temporal["interval"][0][1][:10] == dates[-1]
    spatial = body["extent"]["spatial"]
    assert spatial["storageCrs"] == f"{EPSG}{epsg}"
    assert [g["resolution"] for g in spatial["grid"]] == [10.0, 10.0]
    assert 1000 <= spatial["grid"][0]["cellsCount"] <= 1010
    lon_min, lat_min, lon_max, lat_max = spatial["bbox"][0]
    assert lon_max - lon_min < 0.2 and lat_max - lat_min < 0.1
    rels = {link["rel"] for link in body["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/coverage" in rels
    assert "http://www.opengis.net/def/rel/ogc/1.0/map" in rels
