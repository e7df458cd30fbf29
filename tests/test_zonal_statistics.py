"""The ``zonal-statistics`` process as clients use it (a real server, requests and OWSLib),
checked against the sample's ground truth and against the GeoPackages read directly."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pyogrio
import pytest
import requests
import shapely
from owslib.ogcapi.processes import Processes

from tests.conftest import start_server

CLEAR_DAY = "2024-05-17"
COMMUNE = "35051"


def execute(server, inputs, **extra):
    return requests.post(f"{server.url}/processes/zonal-statistics/execution",
                         json={"inputs": inputs, **extra}, timeout=300)


@pytest.fixture(scope="module")
def parcels(sample_dir):
    """Brittany parcels from the GeoPackage: id → (properties, Lambert-93 geometry)."""
    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "bretagne-parcels.gpkg")
    names = list(meta["fields"])
    rows = [dict(zip(names, values)) for values in zip(*fields)]
    return {row["id"]: (row, geom) for row, geom in zip(rows, shapely.from_wkb(wkb))}


@pytest.fixture(scope="module")
def truth(sample_dir):
    """(parcel id, date) → expected mean NDVI, for parcels clear on that date."""
    with open(sample_dir / "truth" / "ndvi_parcels.csv", newline="") as handle:
        return {(r["parcel_id"], r["date"]): float(r["ndvi_mean"])
                for r in csv.DictReader(handle) if r["area"] == "bretagne"}


@pytest.fixture(scope="module")
def commune_result(server):
    response = execute(server, {"zones": {"collection": "bretagne-parcels",
                                          "filter": f"commune = '{COMMUNE}'"},
                                "datetime": CLEAR_DAY})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/geo+json")
    return response.json()


def test_mean_ndvi_per_parcel_matches_the_truth(commune_result, parcels, truth):
    features = commune_result["features"]
    expected_ids = {pid for pid, (row, _) in parcels.items() if row["commune"] == COMMUNE}
    assert {f["id"] for f in features} == expected_ids  # every parcel, none dropped
    checked = 0
    for feature in features:
        props = feature["properties"]
        assert props["commune"] == COMMUNE  # the zone's own properties are kept
        expected = truth.get((feature["id"], CLEAR_DAY))
        if expected is None:
            continue
        checked += 1
        assert props["mean"] == pytest.approx(expected, abs=0.005), feature["id"]
        # parcels lie on the 10 m grid: count is the area in 100 m² pixels
        assert props["count"] == pytest.approx(props["area_m2"] / 100, abs=1e-3)
        assert props["valid_fraction"] == pytest.approx(1.0)
        assert props["std"] >= 0
    assert checked > 100


def test_inline_zones_give_the_same_result_as_the_served_collection(server, commune_result,
                                                                    parcels):
    chosen = sorted(pid for pid, (row, _) in parcels.items() if row["commune"] == COMMUNE)[:40]
    inline = {"type": "FeatureCollection", "crs": "EPSG:2154", "features": [
        {"type": "Feature", "id": pid, "properties": {"name": pid},
         "geometry": json.loads(shapely.to_geojson(parcels[pid][1]))} for pid in chosen]}
    response = execute(server, {"zones": inline, "datetime": CLEAR_DAY})
    assert response.status_code == 200, response.text
    served = {f["id"]: f["properties"] for f in commune_result["features"]}
    for feature in response.json()["features"]:
        for name in ("mean", "std", "count", "valid_fraction"):
            assert feature["properties"][name] == pytest.approx(served[feature["id"]][name],
                                                                abs=1e-9)


def test_series_of_one_parcel_equals_single_date_calls(server, parcels, truth):
    parcel = next(pid for (pid, day) in truth if day == CLEAR_DAY)
    zones = {"collection": "bretagne-parcels", "filter": f"id = '{parcel}'"}
    response = execute(server, {"zones": zones, "datetime": "2024-01-01/2024-12-31",
                                "temporal": "series", "min_valid_fraction": 1.0})
    assert response.status_code == 200, response.text
    [feature] = response.json()["features"]
    series = feature["properties"]["series"]
    dates = [entry["datetime"][:10] for entry in series]
    assert dates == sorted(d for (pid, d) in truth if pid == parcel)  # the clear dates
    for entry in series[:3]:
        single = execute(server, {"zones": zones, "datetime": entry["datetime"][:10]}).json()
        assert single["features"][0]["properties"]["mean"] == pytest.approx(entry["mean"],
                                                                            abs=1e-12)
        assert entry["mean"] == pytest.approx(truth[(parcel, entry["datetime"][:10])],
                                              abs=0.005)


def test_csv_opens_in_pandas_one_row_per_zone(server, parcels):
    response = execute(server, {"zones": {"collection": "bretagne-parcels",
                                          "filter": f"commune = '{COMMUNE}'"},
                                "datetime": "2024-06-01/2024-08-31",
                                "statistics": ["mean", "median", "p10", "p90", "count"],
                                "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(response.text), dtype={"id": str, "commune": str})
    n = sum(1 for row, _ in parcels.values() if row["commune"] == COMMUNE)
    assert len(table) == n and table["id"].is_unique
    assert {"mean", "median", "p10", "p90", "count"} <= set(table.columns)
    assert (table["p10"] <= table["median"]).all() and (table["median"] <= table["p90"]).all()


def test_series_csv_has_one_row_per_zone_and_date(server):
    response = execute(server, {"zones": {"collection": "bretagne-parcels",
                                          "filter": f"commune = '{COMMUNE}'",
                                          "bbox": [-1.62, 48.12, -1.60, 48.13]},
                                "datetime": "2024-01-01/2024-06-30", "temporal": "series",
                                "format": "csv"})
    assert response.status_code == 200, response.text
    table = pd.read_csv(io.StringIO(response.text), dtype={"id": str})
    assert {"id", "datetime", "item", "mean"} <= set(table.columns)
    assert not table.duplicated(["id", "datetime"]).any()
    assert table["id"].nunique() < len(table)


def test_geojson_output_opens_in_gdal(commune_result, tmp_path):
    path = tmp_path / "zonal.geojson"
    path.write_text(json.dumps(commune_result))
    meta, _, wkb, fields = pyogrio.raw.read(path)
    assert {"mean", "count", "valid_fraction", "commune"} <= set(meta["fields"])
    assert len(wkb) == len(commune_result["features"])
    x, y = shapely.from_wkb(wkb[0]).centroid.coords[0]
    assert -1.7 < x < -1.4 and 48.0 < y < 48.2  # CRS84


def test_zones_without_data_are_kept_with_count_zero(server):
    outside = {"type": "Feature", "id": "atlantic", "properties": {},
               "geometry": {"type": "Polygon", "coordinates": [
                   [[-1.6, 48.2], [-1.59, 48.2], [-1.59, 48.21], [-1.6, 48.21], [-1.6, 48.2]]]}}
    inside = {"type": "Feature", "id": "field", "properties": {},
              "geometry": {"type": "Polygon", "coordinates": [
                  [[-1.58, 48.09], [-1.579, 48.09], [-1.579, 48.091], [-1.58, 48.091],
                   [-1.58, 48.09]]]}}
    response = execute(server, {"zones": {"type": "FeatureCollection",
                                          "features": [outside, inside]},
                                "datetime": CLEAR_DAY})
    assert response.status_code == 200, response.text
    by_id = {f["id"]: f["properties"] for f in response.json()["features"]}
    assert by_id["atlantic"]["count"] == 0 and by_id["atlantic"]["mean"] is None
    assert by_id["atlantic"]["warning"]
    assert by_id["field"]["count"] > 0 and by_id["field"]["mean"] is not None


def test_owslib_processes_client(server):
    api = Processes(server.url)
    assert "zonal-statistics" in {p["id"] for p in api.processes()}
    description = api.process("zonal-statistics")
    assert "zones" in description["inputs"] and "statistics" in description["inputs"]
    result = api.execute("zonal-statistics", {
        "zones": {"collection": "bretagne-parcels", "filter": f"commune = '{COMMUNE}'",
                  "bbox": [-1.62, 48.12, -1.60, 48.13]},
        "datetime": CLEAR_DAY, "statistics": ["mean"]}, response="raw")
    features = result["features"] if "features" in result else \
        result["outputs"][0]["features"]
    assert features and all("mean" in f["properties"] for f in features)


@pytest.mark.parametrize("inputs, status, words", [
    ({"zones": "parcels", "datetime": CLEAR_DAY}, 400, "zones"),
    ({"zones": {"type": "FeatureCollection", "features": []}, "datetime": CLEAR_DAY}, 400,
     "no feature"),
    ({"zones": {"type": "FeatureCollection", "features": [{"type": "Feature",
                                                            "geometry": "nope"}]},
      "datetime": CLEAR_DAY}, 400, "zone 0"),
    ({"zones": {"collection": "nope"}, "datetime": CLEAR_DAY}, 400, "bretagne-parcels"),
    ({"zones": {"collection": "bretagne-parcels", "filter": "commune = = 1"},
      "datetime": CLEAR_DAY}, 400, "filter"),
    ({"zones": {"collection": "bretagne-parcels", "filter": "secret = 1"},
      "datetime": CLEAR_DAY}, 400, "secret"),
    ({"zones": {"collection": "bretagne-parcels", "filter": "commune = 'none'"},
      "datetime": CLEAR_DAY}, 400, "no feature"),
    ({"zones": {"collection": "bretagne-communes"}, "datetime": CLEAR_DAY,
      "statistics": ["average"]}, 400, "statistics"),
    ({"zones": {"collection": "bretagne-communes"}, "datetime": CLEAR_DAY,
      "variable": "temperature"}, 400, "variable"),
    ({"zones": {"collection": "bretagne-communes"}, "datetime": "2030-01-01"}, 404,
     "no Sentinel-2 scene"),
    ({"zones": {"collection": "bretagne-communes"}}, 400, "datetime"),
    ({"zones": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "a", "geometry": {"type": "Point", "coordinates": [0, 0]}},
        {"type": "Feature", "id": "a", "geometry": {"type": "Point", "coordinates": [0, 0]}}]},
      "datetime": CLEAR_DAY}, 400, "unique"),
])
def test_bad_zones_get_a_4xx_that_says_why(server, inputs, status, words):
    response = execute(server, inputs)
    assert response.status_code == status, response.text
    assert words in response.json()["description"], response.json()


def test_more_zones_than_the_limit_is_413(sample_dir, tmp_path_factory):
    small = start_server(sample_dir, tmp_path_factory.mktemp("few-zones"),
                         {"SENTINELLE_MAX_ZONES": "100"})
    try:
        response = execute(small, {"zones": {"collection": "bretagne-parcels",
                                             "filter": f"commune = '{COMMUNE}'"},
                                   "datetime": CLEAR_DAY})
        assert response.status_code == 413, response.text
        assert "at most 100" in response.json()["description"]
        features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
            [[-1.58, 48.09], [-1.579, 48.09], [-1.579, 48.091], [-1.58, 48.09]]]}}] * 101
        inline = execute(small, {"zones": {"type": "FeatureCollection", "features": features},
                                 "datetime": CLEAR_DAY})
        assert inline.status_code == 413 and "at most 100" in inline.json()["description"]
    finally:
        small.process.terminate()
        small.process.wait(timeout=10)


def test_statistics_per_commune(server, sample_dir):
    response = execute(server, {"zones": {"collection": "bretagne-communes"},
                                "datetime": "2024-06-01/2024-08-31"})
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    meta = pyogrio.read_info(sample_dir / "vectors" / "bretagne-communes.gpkg")
    assert len(features) == meta["features"]
    assert all(0.2 < f["properties"]["mean"] < 0.95 for f in features)
    assert all(f["properties"]["valid_fraction"] > 0.9 for f in features)


def test_tree_cover_per_commune_is_one_request(server, sample_dir):
    """``variable: tree-cover``: the mean is the share of each commune under trees."""
    response = execute(server, {"zones": {"collection": "guyane-communes"},
                                "datetime": "2024-10-21", "variable": "tree-cover",
                                "statistics": ["mean", "valid_fraction"], "format": "csv"})
    assert response.status_code == 200, response.text
    table = pd.read_csv(io.StringIO(response.text), dtype={"id": str})
    with open(sample_dir / "truth" / "tree_cover_communes.csv", newline="") as handle:
        truth = {r["commune"]: float(r["tree_fraction_after"])
                 for r in csv.DictReader(handle) if r["area"] == "guyane"}
    compared = 0
    for row in table.itertuples():
        if row.valid_fraction > 0.5:
            compared += 1
            assert row.mean == pytest.approx(truth[row.id], abs=0.03), row.id
    assert compared >= 5
