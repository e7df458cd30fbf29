"""Zonal statistics engine: hand-computed answers on tiny rasters, then the sample's truth and
exactextract run directly on the COG files."""

from __future__ import annotations

import csv
import math

import dask.array as da
import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
import shapely.affinity
import xarray as xr
from exactextract import exact_extract
from pyproj import Transformer

from sentinelle.analysis.indices import compute_index
from sentinelle.analysis.zonal import (
    STATISTICS,
    Zones,
    weighted_quantiles,
    zonal_stats,
)
from sentinelle.catalog import Area, Grid, load_cube, mask_clouds, open_catalog, parse_interval
from sentinelle.catalog.imagery import read_imagery
from sentinelle.catalog.search import search
from sentinelle.errors import InvalidInput, TooLarge

ALL = tuple(STATISTICS)
EPSG = "EPSG:32630"
X0, Y1, RES = 600_000.0, 5_300_000.0, 10.0  # top-left corner of the synthetic grids


# --- tiny synthetic rasters ---------------------------------------------------------------

def raster(values: np.ndarray, *, chunks=None, south_up: bool = False) -> xr.DataArray:
    """A (y, x) or (time, y, x) DataArray on a 10 m UTM grid whose top-left corner is
    (X0, Y1); ``chunks`` (rows, cols) makes it a Dask array."""
    values = np.asarray(values, dtype="float32")
    ny, nx = values.shape[-2:]
    y = Y1 - RES * (np.arange(ny) + 0.5)
    x = X0 + RES * (np.arange(nx) + 0.5)
    if south_up:
        values, y = values[..., ::-1, :], y[::-1]
    dims = ("y", "x") if values.ndim == 2 else ("time", "y", "x")
    coords = {"y": y, "x": x}
    if values.ndim == 3:
        coords["time"] = np.array([f"2024-06-{d + 1:02d}" for d in range(values.shape[0])],
                                  dtype="datetime64[ns]")
    array = xr.DataArray(values, dims=dims, coords=coords).rio.write_crs(EPSG)
    if chunks:
        array = array.chunk(dict(zip(("y", "x"), chunks)))
    return array


def px_box(col0: float, row0: float, col1: float, row1: float) -> shapely.Polygon:
    """A rectangle given in (fractional) pixel columns/rows of the synthetic grid."""
    return shapely.box(X0 + RES * col0, Y1 - RES * row1, X0 + RES * col1, Y1 - RES * row0)


def gradient(ny: int = 10, nx: int = 12) -> np.ndarray:
    """Pixel value = its column index; NaN in columns 10 and 11."""
    values = np.tile(np.arange(nx, dtype="float32"), (ny, 1))
    values[:, 10:] = np.nan
    return values


def zones_of(*geoms) -> Zones:
    return Zones.from_arrays([f"z{i}" for i in range(len(geoms))], geoms, EPSG)


def approx(expected, rel=1e-6, abs_=1e-9):
    return pytest.approx(expected, rel=rel, abs=abs_)


def assert_rows_equal(a: list[dict], b: list[dict], names=ALL, rel=1e-12):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra["id"] == rb["id"]
        for name in names:
            if ra[name] is None or rb[name] is None:
                assert ra[name] is None and rb[name] is None, (ra, rb, name)
            else:
                assert ra[name] == pytest.approx(rb[name], rel=rel, abs=1e-12), (ra, rb, name)


# --- known answers ------------------------------------------------------------------------

def test_aligned_square_every_statistic():
    row, = zonal_stats(raster(gradient(), chunks=(4, 5)), zones_of(px_box(2, 1, 5, 4)), ALL)
    # columns 2, 3, 4 × three rows, all whole pixels
    assert row["count"] == approx(9)
    assert row["valid_fraction"] == approx(1)
    assert row["mean"] == approx(3)
    assert row["sum"] == approx(27)
    assert row["std"] == approx(math.sqrt(2 / 3))
    assert (row["min"], row["max"]) == (2, 4)
    assert row["median"] == approx(3)
    # three equally weighted values 2, 3, 4: numpy's linear quantiles
    for name, q in (("p10", 0.1), ("p25", 0.25), ("p75", 0.75), ("p90", 0.9)):
        assert row[name] == approx(float(np.quantile([2, 3, 4], q)))
    assert row["warning"] is None


def test_misaligned_square_uses_coverage_fractions():
    # half of column 2, whole columns 3 and 4, rows 1–3: weights 1.5, 3, 3 for values 2, 3, 4
    row, = zonal_stats(raster(gradient(), chunks=(3, 3)), zones_of(px_box(2.5, 1, 5, 4)), ALL)
    assert row["count"] == approx(7.5)
    assert row["sum"] == approx(2 * 1.5 + 3 * 3 + 4 * 3)
    assert row["mean"] == approx(24 / 7.5)
    assert row["std"] == approx(math.sqrt(81 / 7.5 - (24 / 7.5) ** 2))
    assert (row["min"], row["max"]) == (2, 4)
    assert row["valid_fraction"] == approx(1)
    # exactextract's weighted quantile: s = (0, 1·3 + 2·1.5, 2·3 + 2·4.5) = (0, 6, 15), sn = 15
    assert row["p10"] == approx(2 + 1.5 / 6)
    assert row["p25"] == approx(2 + 3.75 / 6)
    assert row["median"] == approx(3 + 1.5 / 9)
    assert row["p75"] == approx(3 + 5.25 / 9)
    assert row["p90"] == approx(3 + 7.5 / 9)


def test_quarter_pixels_and_partial_validity():
    data = raster(gradient(), chunks=(5, 6))
    rows = zonal_stats(data, zones_of(
        px_box(0.5, 0.5, 2.5, 2.5),   # 1/4, 1/2, 1/4 of columns 0, 1, 2 on two rows
        px_box(8, 0, 12, 2),          # columns 8, 9 valid, 10, 11 NaN → half valid
        px_box(-2, 3, 2, 5),          # half outside the raster → half valid
        px_box(6.4, 2.4, 6.6, 2.6),   # 0.2 × 0.2 px inside one pixel
    ), ALL, min_zone_pixels=0)
    quarter, nan_half, outside_half, tiny = rows
    assert quarter["count"] == approx(4)
    assert quarter["mean"] == approx((0 * 1 + 1 * 2 + 2 * 1) / 4)
    assert nan_half["count"] == approx(4)
    assert nan_half["mean"] == approx(8.5)
    assert nan_half["valid_fraction"] == approx(0.5)
    assert outside_half["count"] == approx(4)
    assert outside_half["valid_fraction"] == approx(0.5)
    assert outside_half["mean"] == approx(0.5)
    # with min_zone_pixels=0 a zone smaller than a pixel is summarised from its sliver
    assert tiny["count"] == approx(0.04, rel=1e-5)
    assert tiny["valid_fraction"] == approx(1, rel=1e-5)
    assert tiny["mean"] == tiny["median"] == tiny["min"] == 6
    assert tiny["std"] == approx(0)


def test_zones_smaller_than_a_pixel_are_reported_not_summarised():
    data = raster(gradient(), chunks=(5, 6))
    [tiny, whole] = zonal_stats(data, zones_of(px_box(6.4, 2.4, 6.6, 2.6),
                                               px_box(6, 2, 7, 3)), ALL)
    assert tiny["count"] == 0 and tiny["valid_fraction"] == 0
    assert all(tiny[s] is None for s in ALL if s not in ("count", "valid_fraction"))
    assert "smaller than 1 pixel" in tiny["warning"]
    assert whole["count"] == approx(1) and whole["mean"] == 6


def test_zones_without_valid_pixels_are_kept_with_nulls():
    geoms = [
        px_box(100, 100, 103, 103),                      # outside the data
        px_box(10, 0, 12, 3),                            # fully masked (NaN)
        shapely.Polygon([(X0, Y1), (X0 + 30, Y1), (X0 + 60, Y1)]),  # zero area
        shapely.Point(X0 + 15, Y1 - 15),                 # no area
        shapely.LineString([(X0, Y1 - 5), (X0 + 50, Y1 - 5)]),
        None,                                            # null geometry
        shapely.Polygon(),                               # empty
        px_box(2, 1, 5, 4),                              # a normal zone, still answered
    ]
    rows = zonal_stats(raster(gradient(), chunks=(4, 4)), zones_of(*geoms), ALL)
    assert [r["id"] for r in rows] == [f"z{i}" for i in range(len(geoms))]
    for row in rows[:-1]:
        assert row["count"] == 0 and row["valid_fraction"] == 0
        assert all(row[s] is None for s in ALL if s not in ("count", "valid_fraction"))
        assert row["warning"]
    assert "no valid pixel" in rows[0]["warning"] and "no valid pixel" in rows[1]["warning"]
    assert "zero area" in rows[2]["warning"]
    assert "Point has no area" in rows[3]["warning"]
    assert "LineString has no area" in rows[4]["warning"]
    assert "empty" in rows[5]["warning"] and "empty" in rows[6]["warning"]
    assert rows[-1]["mean"] == approx(3) and rows[-1]["warning"] is None


def test_invalid_geometry_is_repaired_and_reported():
    # a bow tie over columns 0–4, rows 0–4: two triangles of 6.25 px each
    bowtie = shapely.Polygon([(X0, Y1), (X0 + 50, Y1 - 50), (X0 + 50, Y1), (X0, Y1 - 50)])
    row, = zonal_stats(raster(np.ones((10, 12))), zones_of(bowtie), ALL)
    assert "invalid geometry repaired" in row["warning"]
    assert row["count"] == approx(12.5)
    assert row["valid_fraction"] == approx(1)
    assert row["mean"] == approx(1)


def test_results_do_not_depend_on_blocks():
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 0.2, (37, 41)).astype("float32")
    values[rng.random(values.shape) < 0.1] = np.nan
    geoms = [shapely.Point(X0 + rng.uniform(0, 410), Y1 - rng.uniform(0, 370))
             .buffer(rng.uniform(3, 120)) for _ in range(60)]
    geoms += [px_box(-3, -3, 44, 40)]  # covers every block
    zones = zones_of(*geoms)
    one = zonal_stats(raster(values), zones, ALL)
    for chunks in ((7, 9), (37, 5), (3, 41), (16, 16)):
        assert_rows_equal(zonal_stats(raster(values, chunks=chunks), zones, ALL), one)


def test_matches_exactextract_on_a_single_array():
    rng = np.random.default_rng(2)
    values = rng.gamma(2.0, 1.0, (30, 30)).astype("float32")
    geoms = [shapely.Point(X0 + rng.uniform(0, 300), Y1 - rng.uniform(0, 300))
             .buffer(rng.uniform(5, 80)) for _ in range(25)]
    ours = zonal_stats(raster(values, chunks=(8, 7)), zones_of(*geoms), ALL)
    from exactextract.raster import NumPyRasterSource

    source = NumPyRasterSource(values, X0, Y1 - 300, X0 + 300, Y1)
    features = [{"type": "Feature", "properties": {}, "geometry": g.__geo_interface__}
                for g in geoms]
    ops = ["count", "mean", "stdev", "sum", "min", "max", "median", "quantile(q=0.1)",
           "quantile(q=0.25)", "quantile(q=0.75)", "quantile(q=0.9)"]
    theirs = [f["properties"] for f in exact_extract(source, features, ops)]
    names = {"count": "count", "mean": "mean", "std": "stdev", "sum": "sum", "min": "min",
             "max": "max", "median": "median", "p10": "quantile_10", "p25": "quantile_25",
             "p75": "quantile_75", "p90": "quantile_90"}
    for mine, ref in zip(ours, theirs):
        for stat, key in names.items():
            assert mine[stat] == pytest.approx(ref[key], rel=1e-6, abs=1e-9), (stat, mine, ref)


def test_weighted_quantiles():
    rng = np.random.default_rng(3)
    values = rng.normal(size=200)
    qs = [0, 0.1, 0.5, 0.9, 1]
    assert weighted_quantiles(values, np.ones(200), qs) == approx(np.quantile(values, qs))
    # repeated values merge their weights: [1, 1, 2] ≡ 1 (weight 2), 2 (weight 1)
    assert weighted_quantiles([1, 1, 2], [1, 1, 1], [0.5]) == approx(
        weighted_quantiles([1, 2], [2, 1], [0.5]))
    assert np.isnan(weighted_quantiles([], [], [0.5])).all()


def test_zones_in_another_crs_are_reprojected():
    data = raster(gradient(), chunks=(4, 4))
    utm = [px_box(2.5, 1, 5, 4), shapely.Point(X0 + 55, Y1 - 45).buffer(25)]
    to_l93 = Transformer.from_crs(EPSG, "EPSG:2154", always_xy=True)
    l93 = [shapely.transform(g, to_l93.transform, interleaved=False) for g in utm]
    assert_rows_equal(zonal_stats(data, Zones.from_arrays(["a", "b"], l93, "EPSG:2154"), ALL),
                      zonal_stats(data, Zones.from_arrays(["a", "b"], utm, EPSG), ALL),
                      rel=1e-6)


def test_south_up_and_in_memory_rasters():
    zones = zones_of(px_box(2.5, 1, 5, 4), px_box(0.3, 6.2, 7.7, 9.9))
    reference = zonal_stats(raster(gradient(), chunks=(4, 4)), zones, ALL)
    assert_rows_equal(zonal_stats(raster(gradient(), south_up=True, chunks=(3, 5)), zones, ALL),
                      reference)
    assert_rows_equal(zonal_stats(raster(gradient()), zones, ALL), reference)


def test_series_rows_are_the_clear_dates_and_match_single_dates():
    stack = np.stack([gradient(), gradient() * 2, gradient() + 1])
    stack[1, :, 0:3] = np.nan   # date 2: cloud over columns 0–2
    stack[2, :5, :] = np.nan    # date 3: cloud over rows 0–4
    series = raster(stack, chunks=(4, 5)).chunk({"time": 2})
    series = series.assign_coords(id=("time", ["A", "B", "C"]))
    zones = zones_of(px_box(0, 0, 2, 2),      # clear on date 1 only
                     px_box(3, 6, 6, 9),      # clear on every date
                     px_box(2, 0, 4, 2),      # half clouded on date 2, fully on date 3
                     px_box(10, 0, 12, 3))    # never valid
    rows = zonal_stats(series, zones, ALL)
    assert [(r["id"], r["item"]) for r in rows] == [
        ("z0", "A"), ("z1", "A"), ("z1", "B"), ("z1", "C"), ("z2", "A"), ("z3", None)]
    assert rows[1]["datetime"] == "2024-06-01T00:00:00Z"
    assert rows[-1]["count"] == 0 and rows[-1]["mean"] is None and rows[-1]["datetime"] is None
    assert "no date" in rows[-1]["warning"]
    # with no threshold every date with some valid pixel gets a row
    loose = zonal_stats(series, zones, ALL, min_valid_fraction=0)
    assert [(r["id"], r["item"]) for r in loose if r["id"] == "z2"] == [("z2", "A"), ("z2", "B")]
    assert next(r for r in loose if r["id"] == "z2" and r["item"] == "B")["valid_fraction"] \
        == approx(0.5)
    # every row equals the single-date call on that date
    for t, item in enumerate("ABC"):
        single = {r["id"]: r for r in zonal_stats(series.isel(time=t), zones, ALL)}
        for row in (r for r in loose if r["item"] == item):
            assert_rows_equal([row], [single[row["id"]]], rel=0)


def test_limits_and_bad_input():
    data = raster(gradient())
    zones = zones_of(*[px_box(i % 10, 0, i % 10 + 1, 1) for i in range(11)])
    with pytest.raises(TooLarge, match="11 zones .* at most 10"):
        zonal_stats(data, zones, max_zones=10)
    with pytest.raises(InvalidInput, match="unknown statistic.*p99"):
        zonal_stats(data, zones, ["mean", "p99"])
    with pytest.raises(InvalidInput, match="no CRS"):
        zonal_stats(xr.DataArray(gradient(), dims=("y", "x")), zones)
    with pytest.raises(InvalidInput, match=r"\(y, x\) or \(time, y, x\)"):
        zonal_stats(xr.DataArray(da.zeros(4), dims=("x",)), zones)


def test_zones_from_geojson_features():
    square = px_box(2, 1, 5, 4).__geo_interface__
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "f1", "properties": {"code": "A"}, "geometry": square},
        {"type": "Feature", "id": "f2", "properties": {"code": "B"}, "geometry": None},
    ]}
    zones = Zones.from_features(collection, EPSG)
    assert zones.ids == ("f1", "f2") and zones.properties[0] == {"code": "A"}
    assert zones.warnings[0] is None and "empty" in zones.warnings[1]
    assert Zones.from_features(collection, EPSG, id_field="code").ids == ("A", "B")
    with pytest.raises(InvalidInput, match="no property 'nope'"):
        Zones.from_features(collection, EPSG, id_field="nope")
    with pytest.raises(InvalidInput, match="not a GeoJSON geometry"):
        Zones.from_features([{"type": "Feature", "geometry": {"type": "Blob"}}], EPSG)
    rows = zonal_stats(raster(gradient()), zones, ["mean", "count"])
    assert rows[0] == {"id": "f1", "mean": approx(3), "count": approx(9), "warning": None}


# --- the sample: truth and exactextract on the COG files ------------------------------------

DATE, ITEM, COMMUNE = "2024-05-17", "S2B_30UXU_20240517_0_L2A", "35051"


@pytest.fixture(scope="module")
def parcels(sample_dir):
    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "bretagne-parcels.gpkg",
                                            columns=["id", "commune"],
                                            where=f"commune = '{COMMUNE}'")
    assert len(wkb) > 100
    return Zones.from_arrays(fields[0], shapely.from_wkb(wkb), meta["crs"])


@pytest.fixture(scope="module")
def area(parcels):
    return Area(shapely.box(*shapely.total_bounds(parcels.geometries)).buffer(50), parcels.crs)


@pytest.fixture(scope="module")
def truth(sample_dir):
    with open(sample_dir / "truth" / "ndvi_parcels.csv", newline="") as f:
        return {(r["parcel_id"], r["item_id"]): float(r["ndvi_mean"]) for r in csv.DictReader(f)}


def test_sample_ndvi_matches_truth(sample_dir, parcels, area, truth):
    imagery = read_imagery(open_catalog(sample_dir / "catalog"), area, parse_interval(DATE),
                           ["red", "nir"], mask=True)
    ndvi = compute_index(imagery, "NDVI")
    rows = zonal_stats(ndvi, parcels, ["mean", "count", "valid_fraction"])
    # parcels are drawn on the 10 m grid: count = area / 100 m² (area in the raster CRS)
    areas = shapely.area(parcels.to_crs(ndvi.rio.crs).geometries)
    listed = 0
    for row, parcel_area in zip(rows, areas):
        assert row["count"] == pytest.approx(parcel_area / 100, rel=1e-6)
        assert row["valid_fraction"] == pytest.approx(1, abs=1e-6)
        if (row["id"], ITEM) in truth:
            listed += 1
            assert row["mean"] == pytest.approx(truth[(row["id"], ITEM)], abs=0.005), row
    assert listed == len(rows)


def _ndvi_geotiff(sample_dir, path):
    """NDVI of the sample scene computed with rasterio + numpy only, as a GeoTIFF."""
    item = sample_dir / "catalog" / "sentinel-2-l2a" / ITEM
    bands = {}
    for name, file in (("red", "B04.tif"), ("nir", "B08.tif")):
        with rasterio.open(item / file) as src:
            dn = src.read(1)
            profile = src.profile
        values = dn.astype("float32") * np.float32(0.0001) - np.float32(0.1)
        values[dn == 0] = np.nan
        bands[name] = values
    ndvi = (bands["nir"] - bands["red"]) / (bands["nir"] + bands["red"])
    profile.update(dtype="float32", nodata=np.nan, compress="deflate", driver="GTiff")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(ndvi, 1)
    return path


def test_sample_matches_exactextract_on_the_cog_files(sample_dir, parcels, area, tmp_path):
    reference = _ndvi_geotiff(sample_dir, tmp_path / "ndvi.tif")
    with rasterio.open(reference) as src:
        crs = src.crs.to_string()
    # misaligned shapes: discs around parcel centroids and rotated squares
    utm = parcels.to_crs(crs).geometries
    centres = shapely.centroid(utm[::60])
    geoms = [c.buffer(33.3) for c in centres] + [
        shapely.affinity.rotate(shapely.box(c.x - 41, c.y - 27, c.x + 41, c.y + 27), 23)
        for c in centres]
    imagery = read_imagery(open_catalog(sample_dir / "catalog"), area, parse_interval(DATE),
                           ["red", "nir"], mask=False)
    ours = zonal_stats(compute_index(imagery, "NDVI"), Zones.from_arrays(None, geoms, crs),
                       ["mean", "std", "count", "median", "min", "max"])
    features = [{"type": "Feature", "properties": {}, "geometry": g.__geo_interface__}
                for g in geoms]
    theirs = exact_extract(str(reference), features,
                           ["mean", "stdev", "count", "median", "min", "max"])
    assert len(ours) == len(theirs) >= 10
    for mine, ref in zip(ours, (f["properties"] for f in theirs)):
        assert mine["count"] == pytest.approx(ref["count"], rel=1e-6)
        for stat, key in (("mean", "mean"), ("std", "stdev"), ("median", "median"),
                          ("min", "min"), ("max", "max")):
            assert mine[stat] == pytest.approx(ref[key], abs=1e-6), (stat, mine, ref)


def test_sample_series_matches_single_dates_and_truth(sample_dir, parcels, area, truth):
    catalog = open_catalog(sample_dir / "catalog")
    matches = search(catalog, area, parse_interval("2024-01-01/2024-12-31"))
    grid = Grid.from_area(area, matches[0].scene.epsg, 10)
    cube = mask_clouds(load_cube([m.scene for m in matches], ["red", "nir", "scl"], grid))
    ndvi = compute_index(cube, "NDVI")
    names = ["mean", "std", "count", "valid_fraction"]
    rows = zonal_stats(ndvi, parcels, names, min_valid_fraction=1.0)
    # "clear" in the truth = no cloudy pixel in the parcel: exactly our rows at threshold 1
    expected = {k for k in truth if k[0] in set(parcels.ids)}
    assert {(r["id"], r["item"]) for r in rows if r["item"]} == expected
    never_clear = {r["id"] for r in rows if r["item"] is None}
    assert never_clear == set(parcels.ids) - {k[0] for k in expected}
    assert max(abs(r["mean"] - truth[(r["id"], r["item"])]) for r in rows) < 0.005
    # the cloudiest date: rows equal single-date calls; clouded parcels get count 0 and nulls
    items = [str(i) for i in ndvi["id"].values]
    cloudy = int(np.argmin([sum(r["item"] == i for r in rows) for i in items]))
    item = items[cloudy]
    single = zonal_stats(ndvi.isel(time=cloudy), parcels, names)
    by_id = {r["id"]: r for r in rows if r["item"] == item}
    hidden = [r for r in single if r["count"] == 0]
    assert hidden and all(r["mean"] is None and r["valid_fraction"] == 0 for r in hidden)
    for row in single:
        if row["id"] in by_id:
            assert_rows_equal([by_id[row["id"]]], [row], names, rel=0)
