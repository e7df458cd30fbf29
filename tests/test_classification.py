"""Process ``classification`` as clients see it (a real server), checked per pixel against the
sample's land-cover truth, plus the tree-cover raster against the truth per commune."""

from __future__ import annotations

import base64
import csv
import io
import json

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

from sentinelle.analysis import classify as cl
from sentinelle.analysis.zonal import zonal_stats
from sentinelle.analysis.zones import Zones
from sentinelle.catalog import Area, open_catalog, parse_interval
from sentinelle.catalog.imagery import read_imagery

pytestmark = pytest.mark.server

#: clear summer dates (leaf on, grassland mown): the rules' season
CLEAR = {"bretagne": "2024-06-11", "guyane": "2024-10-21"}
#: truth classes (1 water, 2 built-up, 3 bare soil, 4 grassland, 5 crop, 6 forest,
#: 7 sparse vegetation) → the rules' legend
TO_RULES = np.array([0, cl.WATER, cl.BARE_BUILT, cl.BARE_BUILT, cl.GRASS_CROP, cl.GRASS_CROP,
                     cl.TREES, cl.SPARSE], dtype="uint8")


def execute(server, inputs, *, outputs=None, response="raw"):
    body = {"inputs": inputs, "response": response}
    if outputs is not None:
        body["outputs"] = outputs
    return requests.post(f"{server.url}/processes/classification/execution", json=body,
                         timeout=120)


@pytest.fixture(scope="module")
def truth(sample_dir):
    """region → (class raster, transform, crs, mask of pixels outside the known changes)."""
    changes = json.loads((sample_dir / "truth" / "changes.geojson").read_text())["features"]
    out = {}
    for region in CLEAR:
        with rasterio.open(sample_dir / "truth" / f"landcover-{region}.tif") as ds:
            classes, transform, crs = ds.read(1), ds.transform, ds.crs
        project = Transformer.from_crs(4326, crs, always_xy=True).transform
        changed = [shapely.ops.transform(project, shapely.geometry.shape(f["geometry"]))
                   for f in changes if f["properties"]["area"] == region]
        unchanged = geometry_mask([c.buffer(20) for c in changed], out_shape=classes.shape,
                                  transform=transform)
        out[region] = classes, transform, crs, unchanged
    return out


def area_of(truth, region):
    classes, transform, crs, _ = truth[region]
    height, width = classes.shape
    return {"bbox": [transform.c, transform.f - 10 * height, transform.c + 10 * width,
                     transform.f], "crs": f"EPSG:{crs.to_epsg()}"}


def read_classes(content: bytes, tmp_path, name="classes.tif"):
    path = tmp_path / name
    path.write_bytes(content)
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as ds:
        meta = {"transform": ds.transform, "dtype": ds.dtypes[0], "nodata": ds.nodata,
                "tags": ds.tags(), "descriptions": ds.descriptions, "colormap": ds.colormap(1)}
        return ds.read(1), meta


@pytest.mark.parametrize("region", list(CLEAR))
def test_rules_agree_with_the_truth(server, truth, region, tmp_path):
    response = execute(server, {"area": area_of(truth, region), "datetime": CLEAR[region]},
                       outputs={"classes": {}})
    assert response.status_code == 200, response.text
    classes, meta = read_classes(response.content, tmp_path)
    reference, transform, _, unchanged = truth[region]
    assert meta["transform"] == transform and meta["dtype"] == "uint8" and meta["nodata"] == 0
    assert meta["tags"]["class_5"] == "trees" and "water" in meta["descriptions"][0]
    assert meta["colormap"][cl.TREES][:3] == cl.RULES_LEGEND.colours[cl.TREES]
    accuracy = cl.accuracy(classes, TO_RULES[reference], mask=unchanged)
    assert accuracy >= 0.90, accuracy


def test_random_forest_from_a_few_truth_polygons(server, truth, tmp_path):
    """Three 50 × 50 m squares per class, taken where the truth is uniform, train a forest
    that reproduces the full 7-class truth legend (Guiana)."""
    reference, transform, crs, unchanged = truth["guyane"]
    to_lonlat = Transformer.from_crs(crs, 4326, always_xy=True).transform
    rng = np.random.default_rng(3)
    features = []
    for code in np.unique(reference):
        rows, cols = np.nonzero((reference == code) & unchanged)
        picked = 0
        for i in rng.permutation(len(rows)):
            r, c = rows[i], cols[i]
            window = reference[r:r + 5, c:c + 5]
            if window.shape != (5, 5) or not (window == code).all():
                continue
            x0, y0 = transform * (c, r)
            box = shapely.box(x0, y0 - 50, x0 + 50, y0)
            features.append({"type": "Feature", "properties": {"landcover": int(code)},
                             "geometry": shapely.geometry.mapping(
                                 shapely.ops.transform(to_lonlat, box))})
            picked += 1
            if picked == 3:
                break
    response = execute(server, {"area": area_of(truth, "guyane"), "datetime": CLEAR["guyane"],
                                "method": "random-forest", "class_property": "landcover",
                                "training": {"type": "FeatureCollection",
                                             "features": features}})
    assert response.status_code == 200, response.text
    body = response.json()
    classes, _ = read_classes(base64.b64decode(body["classes"]["value"]), tmp_path)
    accuracy = cl.accuracy(classes, reference, mask=unchanged)
    assert accuracy >= 0.90, accuracy
    summary = body["summary"]
    assert summary["method"] == "random-forest"
    assert {row["code"] for row in summary["legend"]} == set(np.unique(reference).tolist())
    total = sum(row["area_ha"] for row in summary["areas"])
    assert total == pytest.approx(summary["classified_ha"]) and total == pytest.approx(10_000)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["png"]["value"]))))
    assert image.shape == classes.shape + (4,)


def test_kmeans_is_deterministic_and_areas_per_zone(server, truth, sample_dir):
    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "guyane-communes.gpkg")
    codes = list(fields[list(meta["fields"]).index("code")])
    zones = {"type": "FeatureCollection", "crs": "EPSG:2972", "features": [
        {"type": "Feature", "id": str(code), "properties": {},
         "geometry": shapely.geometry.mapping(shapely.from_wkb(g))}
        for code, g in zip(codes, wkb)]}
    inputs = {"area": area_of(truth, "guyane"), "datetime": CLEAR["guyane"],
              "method": "kmeans", "n_classes": 5, "zones": zones}
    first = execute(server, inputs, outputs={"summary": {}})
    assert first.status_code == 200, first.text
    second = execute(server, inputs, outputs={"summary": {}})
    assert first.json()["areas"] == second.json()["areas"]
    summary = first.json()
    assert [row["code"] for row in summary["areas"]] == [1, 2, 3, 4, 5]
    assert len(summary["zones"]) == len(codes)
    by_zone = sum(sum(v for v in row["areas_ha"].values() if v) for row in summary["zones"])
    assert by_zone == pytest.approx(summary["classified_ha"], rel=0.01)  # communes tile it


def test_tree_cover_per_commune_matches_the_truth(sample_dir):
    """``tree_cover`` (rules) summarised with the zonal engine ≈ the truth's forest fraction
    per commune (after the clearing: October)."""
    catalog = open_catalog(sample_dir / "catalog")
    with rasterio.open(sample_dir / "truth" / "landcover-guyane.tif") as ds:
        b = ds.bounds
    area = Area.from_bbox([b.left, b.bottom, b.right, b.top], crs=32622)
    imagery = read_imagery(catalog, area, parse_interval(CLEAR["guyane"]), cl.BANDS,
                           max_cloud=30)
    trees = cl.tree_cover(imagery)
    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "guyane-communes.gpkg")
    codes = list(fields[list(meta["fields"]).index("code")])
    zones = Zones.from_arrays(codes, shapely.from_wkb(wkb), crs=2972)
    rows = {row["id"]: row for row in zonal_stats(trees, zones, ["mean", "valid_fraction"])}
    with open(sample_dir / "truth" / "tree_cover_communes.csv", newline="") as f:
        expected = {row["commune"]: float(row["tree_fraction_after"])
                    for row in csv.DictReader(f) if row["area"] == "guyane"}
    compared = [(rows[c]["mean"], expected[c]) for c in expected
                if c in rows and rows[c]["valid_fraction"] > 0.5]
    assert compared
    for got, want in compared:
        assert got == pytest.approx(want, abs=0.03)


BAD = [
    ({"method": "svm"}, 400, ["method", "rules"]),
    ({"method": "random-forest"}, 400, ["training", "random-forest"]),
    ({"method": "random-forest", "training": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"kind": 1},
         "geometry": {"type": "Polygon", "coordinates": [[[-52.45, 4.84], [-52.449, 4.84],
                                                          [-52.449, 4.841],
                                                          [-52.45, 4.84]]]}}]}},
     400, ["training", "'class'", "kind", "class_property"]),
    ({"method": "random-forest", "training": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class": "forest"},
         "geometry": {"type": "Polygon", "coordinates": [[[-52.45, 4.84], [-52.449, 4.84],
                                                          [-52.449, 4.841],
                                                          [-52.45, 4.84]]]}}]}},
     400, ["training", "two classes"]),
    ({"method": "kmeans", "n_classes": 50}, 400, ["n_classes"]),
    ({"datetime": "2024-05-29"}, 404, ["max_cloud"]),
]


@pytest.mark.parametrize("inputs, status, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_inputs_say_why(server, inputs, status, words):
    response = execute(server, {"area": [-52.47, 4.83, -52.43, 4.87],
                                "datetime": CLEAR["guyane"], **inputs})
    assert response.status_code == status, response.text
    description = response.json()["description"]
    for word in words:
        assert word in description, description


def test_document_response_holds_every_output(server):
    response = execute(server, {"area": [-52.47, 4.83, -52.45, 4.85],
                                "datetime": CLEAR["guyane"]}, response="document")
    assert response.status_code == 200, response.text
    body = response.json()
    document = body["outputs"][0] if "outputs" in body else body
    assert set(document) == {"classes", "summary", "png"}
    with MemoryFile(base64.b64decode(document["classes"]["value"])) as mem, mem.open() as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint8"
