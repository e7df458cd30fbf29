"""Process ``change-detection`` as clients see it (a real server), checked against the sample's
known changes (Guiana deforestation, Brittany new built-up area) and, through the analysis
functions, against the real Theia data (forest dieback in the Meuse, 2016 → 2019)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pyogrio
import pytest
import rasterio
import requests
import shapely
import xarray as xr
from affine import Affine
from PIL import Image
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_validate

from sentinelle.analysis import change as ch
from sentinelle.catalog import parse_interval
from sentinelle.processes.change_detection import PROCESS_METADATA, check_periods

pytestmark = pytest.mark.server

GUIANA_BEFORE, GUIANA_AFTER = "2024-07-01/2024-07-31", "2024-08-01/2024-08-31"  # clear dates
BRITTANY_BEFORE, BRITTANY_AFTER = "2024-05-17", "2024-06-11"  # both clear over the area


def execute(server, inputs, *, outputs=None, response="raw"):
    body = {"inputs": inputs, "response": response}
    if outputs is not None:
        body["outputs"] = outputs
    return requests.post(f"{server.url}/processes/change-detection/execution", json=body,
                         timeout=120)


def truth_area(sample_dir, region):
    """The whole sample area as ``{"bbox", "crs"}`` (the truth raster's bounds)."""
    with rasterio.open(sample_dir / "truth" / f"landcover-{region}.tif") as ds:
        b = ds.bounds
        return {"bbox": [b.left, b.bottom, b.right, b.top], "crs": f"EPSG:{ds.crs.to_epsg()}"}


def truth_change(sample_dir, region):
    features = json.loads((sample_dir / "truth" / "changes.geojson").read_text())["features"]
    feature = next(f for f in features if f["properties"]["area"] == region)
    return shapely.geometry.shape(feature["geometry"]), feature["properties"]


@pytest.fixture(scope="module")
def guiana(server, sample_dir):
    response = execute(server, {"area": truth_area(sample_dir, "guyane"),
                                "before": GUIANA_BEFORE, "after": GUIANA_AFTER})
    assert response.status_code == 200, response.text
    return response.json()


def test_description(server):
    description = requests.get(f"{server.url}/processes/change-detection?f=json",
                               headers={"Accept-Language": "en"}, timeout=30).json()
    assert set(description["inputs"]) == set(PROCESS_METADATA["inputs"])
    assert set(description["outputs"]) == {"changes", "raster", "classes", "summary", "png"}
    assert description["inputs"]["threshold"]["schema"]["exclusiveMinimum"] == 0


def test_guiana_deforestation_found_with_its_area(server, sample_dir, guiana, tmp_path):
    patch, props = truth_change(sample_dir, "guyane")
    losses = [f for f in guiana["changes"]["features"] if f["properties"]["type"] == "loss"]
    # exactly one loss above min_area_ha over the whole area: the clearing
    assert len(losses) == 1, [f["properties"] for f in losses]
    found = losses[0]
    assert found["properties"]["area_ha"] == pytest.approx(props["area_ha"], rel=0.05)
    geometry = shapely.geometry.shape(found["geometry"])  # CRS84
    overlap = geometry.intersection(patch).area / patch.area
    assert overlap > 0.95
    assert found["properties"]["mean_delta"] < -0.5
    assert found["properties"]["before"] > 0.8 and found["properties"]["after"] < 0.3
    total = guiana["summary"]["total"]
    assert total["loss_ha"] == pytest.approx(props["area_ha"], rel=0.05)
    assert guiana["summary"]["before"]["dates"] == ["2024-07-13"]
    assert guiana["summary"]["after"]["dates"] == ["2024-08-12"]
    # the GeoJSON alone (one requested output, raw) opens with GDAL
    response = execute(server, {"area": truth_area(sample_dir, "guyane"),
                                "before": GUIANA_BEFORE, "after": GUIANA_AFTER},
                       outputs={"changes": {}})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/geo+json")
    path = tmp_path / "changes.geojson"
    path.write_bytes(response.content)
    info = pyogrio.read_info(path)
    assert info["features"] == len(guiana["changes"]["features"])
    assert info["crs"] in ("EPSG:4326", "OGC:CRS84")
    assert "area_ha" in list(info["fields"]) and "mean_delta" in list(info["fields"])


def test_rasters_are_valid_cogs(guiana, tmp_path):
    raster = base64.b64decode(guiana["raster"]["value"])
    classes = base64.b64decode(guiana["classes"]["value"])
    for name, content in (("raster", raster), ("classes", classes)):
        path = tmp_path / f"{name}.tif"
        path.write_bytes(content)
        assert cog_validate(str(path), quiet=True)[0], name
    with MemoryFile(raster) as mem, mem.open() as ds:
        assert ds.count == 2 and ds.dtypes == ("float32", "float32")
        delta, signed = ds.read(1), ds.read(2)
        assert "change" in ds.descriptions[0] and "loss" in ds.descriptions[1]
        assert ds.crs.to_epsg() == 32622
    with MemoryFile(classes) as mem, mem.open() as ds:
        codes = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.colormap(1)[ch.LOSS][:3] == ch.CHANGE_COLOURS[ch.LOSS]
        assert ds.tags()["class_2"] == "loss"
    assert (codes == ch.LOSS).sum() == (signed == -1).sum() == 2600  # 26 ha of 10 m pixels
    assert np.all(delta[codes == ch.LOSS] <= -0.2)
    assert np.array_equal(np.isnan(delta), codes == 0)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(guiana["png"]["value"]))))
    assert image.shape == codes.shape + (4,)
    assert (image[codes == ch.LOSS][:, :3] == ch.CHANGE_COLOURS[ch.LOSS]).all()


def test_brittany_new_built_up_area(server, sample_dir):
    patch, props = truth_change(sample_dir, "bretagne")
    area = truth_area(sample_dir, "bretagne")
    # at 0.3 crop phenology (mowing, ripening: −0.2…−0.3) drops out and the patch stands alone
    response = execute(server, {"area": area, "before": BRITTANY_BEFORE,
                                "after": BRITTANY_AFTER, "threshold": 0.3},
                       outputs={"changes": {}})
    assert response.status_code == 200, response.text
    hits = [f for f in response.json()["features"]
            if shapely.geometry.shape(f["geometry"]).intersects(patch)]
    assert len(hits) == 1 and hits[0]["properties"]["type"] == "loss"
    assert hits[0]["properties"]["area_ha"] == pytest.approx(props["area_ha"], rel=0.05)
    assert hits[0]["properties"]["mean_delta"] < -0.5
    # with the default threshold the patch is found too (joined to a mown meadow next to it)
    default = execute(server, {"area": area, "before": BRITTANY_BEFORE,
                               "after": BRITTANY_AFTER}, outputs={"changes": {}}).json()
    covering = [shapely.geometry.shape(f["geometry"]) for f in default["features"]
                if f["properties"]["type"] == "loss"]
    assert shapely.union_all(covering).intersection(patch).area / patch.area > 0.95


def test_summary_per_zone_and_document_response(server, sample_dir):
    patch, props = truth_change(sample_dir, "guyane")
    zones = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "clearing", "properties": {},
         "geometry": shapely.geometry.mapping(patch.buffer(0.001))},
        {"type": "Feature", "id": "elsewhere", "properties": {},
         "geometry": shapely.geometry.mapping(shapely.box(-52.45, 4.84, -52.42, 4.87))},
    ]}
    response = execute(server, {"area": truth_area(sample_dir, "guyane"),
                                "before": GUIANA_BEFORE, "after": GUIANA_AFTER,
                                "zones": zones},
                       outputs={"summary": {}, "changes": {}}, response="document")
    assert response.status_code == 200, response.text
    body = response.json()
    document = body["outputs"][0] if "outputs" in body else body
    rows = {row["id"]: row for row in document["summary"]["zones"]}
    assert rows["clearing"]["loss_ha"] == pytest.approx(props["area_ha"], rel=0.05)
    assert rows["elsewhere"]["loss_ha"] == 0 and rows["elsewhere"]["valid_fraction"] == 1
    assert document["changes"]["type"] == "FeatureCollection"


def test_relative_method_and_min_area(server, sample_dir):
    area = truth_area(sample_dir, "guyane")
    body = execute(server, {"area": area, "before": GUIANA_BEFORE, "after": GUIANA_AFTER,
                            "method": "relative", "min_area_ha": 30},
                   outputs={"summary": {}}).json()
    # the 26 ha clearing is now under the minimum area
    assert body["total"]["loss_ha"] == 0 and body["method"] == "relative"
    assert body["threshold"] == ch.DEFAULT_THRESHOLDS["relative"] and body["min_pixels"] == 3000


BAD = [
    ({"before": "2024-08-01/2024-08-31", "after": "2024-07-01/2024-07-31"}, 400,
     ["before", "must end before after"]),
    ({"before": "2024-07-01/2024-08-15", "after": "2024-08-01/2024-08-31"}, 400,
     ["before", "after"]),
    ({"before": "2024-05-01/2024-05-31", "after": "2024-08-01/2024-08-31"}, 404,
     ["before", "max_cloud"]),
    ({"before": "2024-07-01/2024-07-31", "after": "2025-03-01/2025-03-31"}, 404,
     ["after", "no Sentinel-2 scene"]),
    ({"before": GUIANA_BEFORE, "after": GUIANA_AFTER, "method": "ratio"}, 400,
     ["method", "difference"]),
    ({"before": GUIANA_BEFORE, "after": GUIANA_AFTER, "threshold": -1}, 400, ["threshold"]),
    ({"before": GUIANA_BEFORE, "after": GUIANA_AFTER, "index": "NBR"}, 400,
     ["NBR", "swir22"]),
    ({"before": GUIANA_BEFORE}, 400, ["after", "required"]),
    ({"before": GUIANA_BEFORE, "after": GUIANA_AFTER, "zones": {"type": "FeatureCollection"}},
     400, ["zones"]),
]


@pytest.mark.parametrize("inputs, status, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_inputs_say_why(server, inputs, status, words):
    response = execute(server, {"area": [-52.49, 4.81, -52.46, 4.83], **inputs})
    assert response.status_code == status, response.text
    description = response.json()["description"]
    for word in words:
        assert word in description, description


def test_unknown_output_is_a_client_error(server):
    response = execute(server, {"area": [-52.49, 4.81, -52.46, 4.83], "before": GUIANA_BEFORE,
                                "after": GUIANA_AFTER}, outputs={"polygons": {}})
    assert response.status_code == 400 and "changes" in response.json()["description"]


# --- the analysis functions ------------------------------------------------------------------

def test_sieve_and_polygons_on_a_known_array():
    before = np.full((20, 20), 0.8, dtype="float32")
    after = before.copy()
    after[2:8, 2:8] = 0.1    # 36 px loss
    after[15, 15] = 0.1      # 1 px loss: speckle
    after[12:14, 2:12] = 0.95  # 20 px, +0.15: below the threshold
    after[0, 19] = np.nan
    ds = ch.detect_change(xr.DataArray(before, dims=("y", "x")),
                          xr.DataArray(after, dims=("y", "x"))).compute()
    classes = ch.sieve(ds["change"].values, 5)
    assert (classes == ch.LOSS).sum() == 36 and classes[0, 19] == ch.NODATA
    fc = ch.change_polygons(classes, ds["delta"].values, before, after,
                            transform=Affine(10, 0, 500000, 0, -10, 5000000),
                            crs=rasterio.crs.CRS.from_epsg(32631), to_crs=None)
    assert len(fc["features"]) == 1
    props = fc["features"][0]["properties"]
    assert props["area_ha"] == pytest.approx(0.36) and props["mean_delta"] == pytest.approx(-0.7)
    assert shapely.geometry.shape(fc["features"][0]["geometry"]).area == pytest.approx(3600)
    with pytest.raises(ValueError):
        check_periods(parse_interval("2024-06-01"), parse_interval("2024-05-01"))


@pytest.mark.shared
def test_theia_forest_dieback_detected_inside_bd_foret(shared_data):
    """Real Theia L2A (Meuse): NDVI from B8A (20 m, repeated to 10 m) and B4, nodata −10000,
    CLM cloud mask; median of two summer dates per year; the analysis functions directly (no
    Theia catalog builder: the rasters are read with rasterio)."""
    root = shared_data / "theia-l2a-meuse"
    if not root.is_dir():
        pytest.skip("theia-l2a-meuse is absent")
    with rasterio.open(root / "BDForet_ZoneTest.tif") as ds:
        forest = ds.read(1) == 1

    def ndvi(day: str) -> np.ndarray:
        folder = next(root.glob(f"SENTINEL2*_{day}-*"))
        with rasterio.open(next(folder.glob("*FRE_B4.tif"))) as ds:
            red = ds.read(1).astype("float32")
        with rasterio.open(next(folder.glob("*FRE_B8A.tif"))) as ds:
            nir = ds.read(1).astype("float32").repeat(2, axis=0).repeat(2, axis=1)
        with rasterio.open(next(folder.glob("MASKS/*CLM_R2.tif"))) as ds:
            cloud = ds.read(1).repeat(2, axis=0).repeat(2, axis=1) != 0
        values = (nir - red) / (nir + red)
        values[(red == -10000) | (nir == -10000) | cloud] = np.nan
        return values

    before = np.nanmedian([ndvi("20160707"), ndvi("20160826")], axis=0)
    after = np.nanmedian([ndvi("20190702"), ndvi("20190826")], axis=0)
    assert np.nanmean(before[forest]) > 0.9  # ≈ 0.95 before the dieback
    # dieback is a gradual loss (≈ −0.1 on average): a lower threshold than for clearings
    ds = ch.detect_change(xr.DataArray(before, dims=("y", "x")),
                          xr.DataArray(after, dims=("y", "x")), threshold=0.1).compute()
    classes = ch.sieve(ds["change"].values, ch.min_pixels(0.05, 100))
    loss_in, loss_out = (classes[forest] == ch.LOSS).mean(), (classes[~forest] == ch.LOSS).mean()
    assert loss_in > 0.3 and loss_in > 5 * loss_out
    assert np.nanmean(ds["delta"].values[forest]) < -0.08
    assert abs(np.nanmean(ds["delta"].values[~forest])) < 0.03
