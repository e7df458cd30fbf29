"""Process ``spectral-index`` as clients see it (a real server, requests and OWSLib), checked
against NDVI computed independently with rasterio/numpy from the COGs, and on real Earth
Search data (../shared) through the compute function."""

from __future__ import annotations

import base64
import functools
import io
import json
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import requests
import shapely
import shapely.ops
from PIL import Image
from pyproj import Transformer
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_validate

from sentinelle.catalog import Area, open_catalog, parse_interval
from sentinelle.processes.spectral_index import (
    GEOTIFF,
    PROCESS_METADATA,
    SpectralIndexProcessor,
    spectral_index,
    statistics,
)

MASKED = [0, 1, 3, 8, 9, 10, 11]  # SCL: no data, defective, shadow, clouds, cirrus, snow
COMMUNE = "35051"  # Cesson-Sévigné (synthetic geometry) in bretagne-communes
CLEAR_DAY = "2024-05-17"
SUMMER = "2024-04-01/2024-09-01"  # five dates, all under 30 % cloud over the commune
BRITTANY_BBOX = [-1.58, 48.08, -1.54, 48.11]
GUIANA_BBOX = [-52.47, 4.83, -52.43, 4.87]

pytestmark = pytest.mark.server


# --- helpers: the server ----------------------------------------------------------------------

def execute(server, inputs, *, response="raw", headers=None, **extra):
    body = {"inputs": inputs, "response": response, **extra}
    return requests.post(f"{server.url}/processes/spectral-index/execution", json=body,
                         headers=headers, timeout=120)


def read_tiff(content: bytes):
    with MemoryFile(content) as memfile, memfile.open() as ds:
        return ds.read(1), ds.transform, ds.crs, ds.nodata, ds.tags(), ds.dtypes[0]


def centres(transform, shape):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    xs = transform.c + (cols + 0.5) * transform.a
    ys = transform.f + (rows + 0.5) * transform.e
    return xs, ys


# --- helpers: the reference, straight from the files ------------------------------------------

def item_dir(root: Path, item_id: str) -> Path:
    return next(root.glob(f"**/{item_id}"))


@functools.lru_cache(maxsize=64)
def read_band(path: str):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs


def sample(path: Path, xs, ys):
    """Values of the pixels containing (xs, ys) (source CRS), and the distance (in pixels) of
    each point to the nearest pixel edge."""
    array, transform, _ = read_band(str(path))
    fc = (xs - transform.c) / transform.a
    fr = (ys - transform.f) / transform.e
    cols, rows = np.floor(fc).astype(int), np.floor(fr).astype(int)
    inside = (rows >= 0) & (rows < array.shape[0]) & (cols >= 0) & (cols < array.shape[1])
    values = np.zeros(xs.shape, dtype=array.dtype)
    values[inside] = array[rows[inside], cols[inside]]
    edge = np.minimum.reduce([fc - cols, cols + 1 - fc, fr - rows, rows + 1 - fr])
    return values, edge


def reflectances(folder: Path, xs, ys, *, scale=1e-4, offset=-0.1, files=None):
    """Red and nir reflectance at the points, NaN where masked by SCL or nodata, and the
    distance of each point to the nearest pixel edge of any band."""
    files = files or {"red": "B04.tif", "nir": "B08.tif", "scl": "SCL.tif"}
    scl, edge = sample(folder / files["scl"], xs, ys)
    bad = np.isin(scl, MASKED)
    out = {}
    for band in ("red", "nir"):
        dn, band_edge = sample(folder / files[band], xs, ys)
        edge = np.minimum(edge, band_edge)
        values = dn.astype("float64") * scale + offset
        values[(dn == 0) | bad] = np.nan
        out[band] = values
    return out["red"], out["nir"], edge


def ndvi(red, nir):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (nir - red) / (nir + red)


@pytest.fixture(scope="module")
def commune(sample_dir):
    """The commune's polygon straight from the GeoPackage (Lambert-93)."""
    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "bretagne-communes.gpkg")
    codes = list(fields[list(meta["fields"]).index("code")])
    return shapely.from_wkb(wkb[codes.index(COMMUNE)])


def polygon_mask(polygon, src_epsg, dst_crs, transform, shape):
    """True for pixels whose centre is in the polygon (reprojected, densified every 10 m)."""
    project = Transformer.from_crs(src_epsg, dst_crs, always_xy=True).transform
    projected = shapely.ops.transform(project, shapely.segmentize(polygon, 10))
    return geometry_mask([projected], out_shape=shape, transform=transform, invert=True)


def assert_close_on_valid(result, expected, inside, *, tol=1e-4):
    """Every valid result pixel equals the reference; validity agrees except on a few
    boundary pixels (the server densifies the polygon differently)."""
    valid = np.isfinite(result)
    reference_valid = np.isfinite(expected) & inside
    assert valid.sum() > 1000
    assert np.abs(result[valid] - expected[valid]).max() <= tol
    assert (valid != reference_valid).sum() <= max(3, 0.002 * reference_valid.sum())


# --- the process description -------------------------------------------------------------------

def test_description_lists_inputs_schemas_and_binary_output(server):
    description = requests.get(f"{server.url}/processes/spectral-index?f=json",
                               headers={"Accept-Language": "en"}, timeout=30).json()
    assert description["id"] == "spectral-index"
    assert description["title"] == "Sentinel-2 spectral index"
    assert set(description["inputs"]) == {"area", "datetime", "index", "composite",
                                          "max_cloud", "crs", "resolution", "source", "grid",
                                          "format"}
    assert description["inputs"]["index"]["schema"]["enum"] == \
        ["NDVI", "NDWI", "NDMI", "NBR", "EVI", "SAVI"]
    result = description["outputs"]["result"]["schema"]
    assert result["format"] == "binary" and "contentEncoding" not in result
    french = requests.get(f"{server.url}/processes/spectral-index?f=json",
                          headers={"Accept-Language": "fr"}, timeout=30).json()
    assert french["title"] == "Indice spectral Sentinel-2"
    # the OpenAPI document (which pops contentMediaType) leaves our metadata intact
    openapi = requests.get(f"{server.url}/openapi?f=json", timeout=30).json()
    path = openapi["paths"]["/processes/spectral-index/execution"]["post"]
    assert GEOTIFF in path["responses"]["200"]["content"]
    assert PROCESS_METADATA["outputs"]["result"]["schema"]["contentMediaType"] == GEOTIFF
    processor = SpectralIndexProcessor({"name": "x"})
    processor.metadata["outputs"]["result"]["schema"].pop("contentMediaType")
    assert "contentMediaType" in PROCESS_METADATA["outputs"]["result"]["schema"]


# --- values -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def commune_tiff(server):
    response = execute(server, {"area": {"collection": "bretagne-communes", "id": COMMUNE},
                                "datetime": CLEAR_DAY})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == GEOTIFF
    return response.content


def test_ndvi_over_a_commune_equals_numpy(commune_tiff, sample_dir, commune, tmp_path):
    values, transform, crs, nodata, tags, dtype = read_tiff(commune_tiff)
    assert dtype == "float32" and np.isnan(nodata) and crs.to_epsg() == 32630
    assert tags["dates"] == CLEAR_DAY and tags["index"] == "NDVI"
    path = tmp_path / "ndvi.tif"
    path.write_bytes(commune_tiff)
    assert cog_validate(str(path), quiet=True)[0]
    xs, ys = centres(transform, values.shape)
    red, nir, _ = reflectances(item_dir(sample_dir / "catalog", "S2B_30UXU_20240517_0_L2A"),
                               xs, ys)
    inside = polygon_mask(commune, 2154, crs, transform, values.shape)
    assert_close_on_valid(values, ndvi(red, nir), inside)


def test_median_composite_equals_numpy_median_of_valid_dates(server, sample_dir, commune):
    response = execute(server, {"area": {"collection": "bretagne-communes", "id": COMMUNE},
                                "datetime": SUMMER, "composite": "median"})
    assert response.status_code == 200, response.text
    values, transform, crs, _, tags, _ = read_tiff(response.content)
    dates = tags["dates"].split(",")
    assert dates == ["2024-04-22", "2024-05-17", "2024-06-11", "2024-07-21", "2024-08-25"]
    xs, ys = centres(transform, values.shape)
    stacks = [reflectances(item_dir(sample_dir / "catalog", scene), xs, ys)
              for scene in tags["scenes"].split(",")]
    with np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        red = np.nanmedian(np.stack([s[0] for s in stacks]), axis=0)
        nir = np.nanmedian(np.stack([s[1] for s in stacks]), axis=0)
    inside = polygon_mask(commune, 2154, crs, transform, values.shape)
    assert_close_on_valid(values, ndvi(red, nir), inside)
    latest = execute(server, {"area": {"collection": "bretagne-communes", "id": COMMUNE},
                              "datetime": SUMMER, "composite": "latest", "format": "json"})
    assert latest.status_code == 200 and latest.json()["composite"] == "latest"


@pytest.mark.parametrize("epsg, bbox, day, area_epsg", [
    (2154, BRITTANY_BBOX, CLEAR_DAY, 32630),
    (2972, GUIANA_BBOX, "2024-02-19", 32622),
])
def test_reprojection_puts_values_where_they_belong(server, sample_dir, epsg, bbox, day,
                                                    area_epsg):
    response = execute(server, {"area": bbox, "datetime": day, "crs": f"EPSG:{epsg}"})
    assert response.status_code == 200, response.text
    values, transform, crs, _, tags, _ = read_tiff(response.content)
    assert crs.to_epsg() == epsg and transform.a == 10
    # every output pixel holds the source pixel under its centre (nearest neighbour)
    xs, ys = centres(transform, values.shape)
    to_utm = Transformer.from_crs(epsg, area_epsg, always_xy=True)
    ux, uy = to_utm.transform(xs, ys)
    scene = tags["scenes"]
    red, nir, edge = reflectances(item_dir(sample_dir / "catalog", scene), ux, uy)
    expected = ndvi(red, nir)
    clear = np.isfinite(values) & (edge > 0.15)  # skip centres on a source pixel's edge
    assert clear.sum() > 0.2 * values.size
    np.testing.assert_allclose(values[clear], expected[clear], atol=1e-4)
    # and a known point: the centre of the bbox lands in the pixel that holds its value
    lon, lat = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    px, py = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    col, row = ~transform * (px, py)
    assert abs(values[int(row), int(col)] - expected[int(row), int(col)]) < 1e-4


def test_png_quicklook(server, commune_tiff):
    response = execute(server, {"area": {"collection": "bretagne-communes", "id": COMMUNE},
                                "datetime": CLEAR_DAY, "format": "png"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    values = read_tiff(commune_tiff)[0]
    assert image.shape == values.shape + (4,)
    np.testing.assert_array_equal(image[..., 3] == 0, np.isnan(values))


def test_json_statistics_agree_with_numpy(server, commune_tiff):
    response = execute(server, {"area": {"collection": "bretagne-communes", "id": COMMUNE},
                                "datetime": CLEAR_DAY, "format": "json"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    values = read_tiff(commune_tiff)[0]
    valid = values[np.isfinite(values)]
    stats = body["statistics"]
    assert stats["valid_pixels"] == valid.size
    assert stats["mean"] == pytest.approx(float(valid.mean(dtype="float64")), abs=1e-6)
    assert stats["min"] == pytest.approx(float(valid.min()), abs=1e-7)
    assert stats["max"] == pytest.approx(float(valid.max()), abs=1e-7)
    assert stats["valid_fraction"] == pytest.approx(valid.size / stats["area_pixels"])
    assert 0.99 <= stats["valid_fraction"] <= 1.0  # a clear date
    assert body["dates"] == [CLEAR_DAY] and body["scenes"] == ["S2B_30UXU_20240517_0_L2A"]
    assert body["cloud_fraction"] == {"S2B_30UXU_20240517_0_L2A": 0.0}
    assert body["crs"] == "EPSG:32630" and body["index"] == "NDVI"


def test_owslib_client_and_document_response(server):
    from owslib.ogcapi.processes import Processes

    api = Processes(server.url)
    assert "spectral-index" in {p["id"] for p in api.processes()}
    assert api.process("spectral-index")["inputs"]["area"]["schema"]["oneOf"]
    # OWSLib asks for response=document by default: the PNG comes back base64-encoded
    result = api.execute("spectral-index", {"area": BRITTANY_BBOX, "datetime": CLEAR_DAY,
                                            "index": "ndwi", "format": "png"})
    output = result["outputs"][0]
    assert output["mediaType"] == "image/png" and output["encoding"] == "base64"
    assert base64.b64decode(output["value"]).startswith(b"\x89PNG")
    stats = api.execute("spectral-index", {"area": BRITTANY_BBOX, "datetime": CLEAR_DAY,
                                           "index": "EVI", "format": "json"}, response="raw")
    assert stats["index"] == "EVI" and stats["statistics"]["valid_pixels"] > 0


def test_outputs_media_type_selects_the_format(server):
    response = execute(server, {"area": BRITTANY_BBOX, "datetime": CLEAR_DAY},
                       outputs={"result": {"format": {"mediaType": "image/png"}}})
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"


def test_asynchronous_job(server):
    response = execute(server, {"area": BRITTANY_BBOX, "datetime": CLEAR_DAY,
                                "format": "json"}, headers={"Prefer": "respond-async"})
    assert response.status_code == 201
    job = response.headers["Location"]
    for _ in range(100):
        status = requests.get(f"{job}?f=json", timeout=30).json()
        if status["status"] in ("successful", "failed"):
            break
        time.sleep(0.2)
    assert status["status"] == "successful"
    result = requests.get(f"{job}/results?f=json", timeout=30).json()
    assert result["statistics"]["valid_pixels"] > 0
    failing = execute(server, {"area": {"collection": "bretagne-communes", "id": "00000"}},
                      headers={"Prefer": "respond-async"})
    job = failing.headers["Location"]
    for _ in range(50):
        status = requests.get(f"{job}?f=json", timeout=30).json()
        if status["status"] == "failed":
            break
        time.sleep(0.2)
    assert status["status"] == "failed" and "00000" in status["message"]


# --- errors -------------------------------------------------------------------------------------

BAD_INPUTS = [
    # (inputs, status, words the message must contain)
    ({"area": BRITTANY_BBOX, "index": "NDXI"}, 400, ["index", "NDXI", "NDVI"]),
    ({"area": BRITTANY_BBOX, "datetime": CLEAR_DAY, "index": "NBR"}, 400,
     ["index", "swir22"]),
    ({"area": [2.0, 45.0, 2.05, 45.05]}, 404, ["area", "outside every territory", "bretagne"]),
    ({"area": BRITTANY_BBOX, "datetime": "2024-10-04"}, 404, ["max_cloud", "datetime"]),
    ({"area": [-5.0, 47.0, 0.0, 49.0]}, 413, ["area", "100,000,000", "coarser resolution"]),
    ({"area": [-1.6, 48.1, -1.5]}, 400, ["area"]),
    ({"area": {"type": "Point", "coordinates": [-1.6, 48.1]}}, 400, ["area", "bbox"]),
    ({"area": [-1.5, 48.1, -1.6, 48.2]}, 400, ["area", "min < max"]),
    ({"area": {"collection": "no-such", "id": "1"}}, 400, ["area", "no-such",
                                                           "bretagne-communes"]),
    ({"area": {"collection": "bretagne-communes", "id": "99999"}}, 404, ["area", "99999"]),
    ({"area": BRITTANY_BBOX, "datetime": "2024-13-45"}, 400, ["datetime", "RFC 3339"]),
    ({"area": BRITTANY_BBOX, "datetime": "2024-06-01/2024-05-01"}, 400,
     ["datetime", "ends before"]),
    ({"area": BRITTANY_BBOX, "crs": "EPSG:27700"}, 400, ["crs", "EPSG:2154"]),
    ({"area": BRITTANY_BBOX, "crs": "not a crs"}, 400, ["crs"]),
    ({"area": BRITTANY_BBOX, "resolution": -10}, 400, ["resolution"]),
    ({"area": BRITTANY_BBOX, "max_cloud": 150}, 400, ["max_cloud", "100"]),
    ({"area": BRITTANY_BBOX, "format": "jpeg"}, 400, ["format", "geotiff"]),
    ({"area": BRITTANY_BBOX, "composite": "mean"}, 400, ["composite", "median"]),
    ({"area": BRITTANY_BBOX, "indice": "NDVI"}, 400, ["indice", "index"]),
    ({"datetime": CLEAR_DAY}, 400, ["area", "required"]),
]


@pytest.mark.parametrize("inputs, status, words", BAD_INPUTS,
                         ids=[f"{i}-{s}" for i, (_, s, _) in enumerate(BAD_INPUTS)])
def test_bad_inputs_are_client_errors_that_say_what_to_change(server, inputs, status, words):
    response = execute(server, inputs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] in ("InvalidParameterValue", "NotFound", "NoData")
    for word in words:
        assert word in body["description"], body["description"]


def test_unreadable_request_body(server):
    response = requests.post(f"{server.url}/processes/spectral-index/execution",
                             data="{not json", timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400


# --- the compute function on real Earth Search data -------------------------------------------

@pytest.fixture(scope="module")
def croatia(shared_data):
    return shared_data / "earthsearch-v1-croatia"


ES_FILES = {"red": "B04.tif", "nir": "B08.tif", "scl": "SCL.tif"}
CROATIA_BBOX = [15.6, 45.6, 15.9, 45.9]  # tile 33TWL only


@pytest.mark.shared
def test_earth_search_single_date_equals_numpy(croatia):
    catalog = open_catalog(croatia)
    area = Area.from_bbox(CROATIA_BBOX)
    # 60 m: each 120 m pixel of the extract maps to whole output pixels (no edge ambiguity)
    values = spectral_index(catalog, area, parse_interval("2023-08-15"), crs="EPSG:32633",
                            resolution=60).compute()
    assert values.attrs["scenes"] == ["S2A_33TWL_20230815_0_L2A"]
    xs, ys = centres(values.rio.transform(), values.shape)
    # boa_offset_applied: reflectance = DN × 0.0001, no −0.1
    red, nir, _ = reflectances(item_dir(croatia, "S2A_33TWL_20230815_0_L2A"), xs, ys,
                               offset=0.0, files=ES_FILES)
    inside = polygon_mask(area.geometry, 4326, 32633, values.rio.transform(), values.shape)
    result = values.values
    assert_close_on_valid(result, ndvi(red, nir), inside)
    assert 0.3 < np.nanmean(result) <= 1.0  # August vegetation; > 1 would mean double offset


@pytest.mark.shared
def test_earth_search_composite_equals_numpy_median(croatia):
    catalog = open_catalog(croatia)
    area = Area.from_bbox(CROATIA_BBOX)
    values = spectral_index(catalog, area, parse_interval("2023-08-01/2023-08-31"),
                            composite="median", max_cloud=50, crs=32633,
                            resolution=60).compute()
    scenes = values.attrs["scenes"]
    assert len(scenes) >= 2
    xs, ys = centres(values.rio.transform(), values.shape)
    stacks = [reflectances(item_dir(croatia, s), xs, ys, offset=0.0, files=ES_FILES)
              for s in scenes]
    with np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        red = np.nanmedian(np.stack([s[0] for s in stacks]), axis=0)
        nir = np.nanmedian(np.stack([s[1] for s in stacks]), axis=0)
    inside = polygon_mask(area.geometry, 4326, 32633, values.rio.transform(), values.shape)
    assert_close_on_valid(values.values, ndvi(red, nir), inside)
    stats = statistics(values)
    valid = values.values[np.isfinite(values.values)]
    assert stats["valid_pixels"] == valid.size
    assert stats["mean"] == pytest.approx(float(valid.mean(dtype="float64")), abs=1e-6)


def test_metadata_is_json_serialisable():
    json.dumps(PROCESS_METADATA)


def test_scl_read_natively_and_repeated_equals_gdal_nearest_warp(sample_dir):
    """The cube reads 20 m SCL on its own grid and repeats pixels instead of warping (the
    costliest step of a 10 m product); the result must be what nearest warping gives."""
    from sentinelle.catalog import Grid, load_cube
    from sentinelle.catalog.cube import _nested_grid, _stack

    catalog = open_catalog(sample_dir / "catalog")
    scenes = [catalog.get("S2B_30UXU_20240118_0_L2A"), catalog.get("S2A_30UXU_20240721_0_L2A")]
    area = Area.from_bbox(BRITTANY_BBOX)
    for anchor in ((0.0, 0.0), (10.0, -30.0), (5.0, 5.0)):  # the last does not nest: warp
        grid = Grid.from_area(area, 32630, 10, anchor=anchor)
        assert (_nested_grid(scenes, "scl", grid) is None) == (anchor == (5.0, 5.0))
        cube = load_cube(scenes, ["red", "scl"], grid)
        warped = _stack(scenes, ["scl"], grid, resampling="nearest", chunk_size=1024)
        expected = warped.sel(band="scl").values.astype("uint8")
        np.testing.assert_array_equal(cube["scl"].values, expected)
        assert np.isin(expected, [3, 8, 9, 10]).any()  # clouds inside: the test has teeth
