"""The catalog layer on the generated sample, checked against its ground truth and against
rasterio/numpy reading the COGs directly."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize

from sentinelle.analysis.indices import compute_index
from sentinelle.catalog import (
    Area,
    Grid,
    composite,
    load_cube,
    mask_clouds,
    open_catalog,
    parse_interval,
    search,
)
from sentinelle.errors import InvalidInput, TooLarge
from sentinelle.settings import Limits


@pytest.fixture(scope="module")
def catalog(sample_dir):
    return open_catalog(sample_dir / "catalog")


@pytest.fixture(scope="module")
def areas(sample_dir):
    """Area name → (Area in CRS84, EPSG of the imagery)."""
    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "areas.geojson")
    names = list(meta["fields"])
    out = {}
    for geom, name, epsg in zip(shapely.from_wkb(wkb), fields[names.index("area")],
                                fields[names.index("epsg")]):
        out[name] = (Area(geom), int(epsg))
    return out


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def native_grid(scene, band="red"):
    """The 10 m grid of an asset, read from the file itself (not from our metadata)."""
    with rasterio.open(scene.assets[band].href) as ds:
        return Grid(ds.crs, ds.transform, ds.shape)


def test_every_item_is_found_per_area(catalog, areas):
    for name, (area, epsg) in areas.items():
        matches = search(catalog, area)
        assert len(matches) >= 8
        assert {m.scene.epsg for m in matches} == {epsg}
        assert [m.scene.datetime for m in matches] == sorted(m.scene.datetime for m in matches)


def test_cube_pixels_equal_the_cogs(catalog):
    scene = catalog.get("S2B_30UXU_20240517_0_L2A")
    grid = native_grid(scene)
    cube = load_cube([scene], ["red", "nir", "swir16", "scl"], grid).compute()
    for band in ("red", "nir"):
        asset = scene.assets[band]
        with rasterio.open(asset.href) as ds:
            dn = ds.read(1)
        expected = np.where(dn == 0, np.nan, dn * 0.0001 - 0.1).astype("float32")
        np.testing.assert_allclose(cube[band].values[0], expected, atol=1e-6)
    # 20 m bands land on the 10 m grid by nearest neighbour: each pixel repeated 2 × 2
    with rasterio.open(scene.assets["scl"].href) as ds:
        scl20 = ds.read(1)
    np.testing.assert_array_equal(cube["scl"].values[0], np.kron(scl20, np.ones((2, 2), "uint8")))
    assert cube.rio.crs.to_epsg() == 32630
    assert cube.rio.transform() == grid.transform


def test_cloud_fraction_over_each_area_matches_truth(catalog, areas, sample_dir):
    truth = {r["item_id"]: float(r["cloud_fraction"])
             for r in read_csv(sample_dir / "truth" / "cloud_fraction.csv")}
    for name, (area, _) in areas.items():
        matches = search(catalog, area)
        for match in matches:
            assert match.cloud_fraction == pytest.approx(truth[match.scene.id], abs=0.01), \
                match.scene.id


def test_cloud_fraction_over_a_commune_matches_truth(catalog, sample_dir):
    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "bretagne-communes.gpkg")
    codes = list(fields[list(meta["fields"]).index("code")])
    truth = defaultdict(dict)
    for row in read_csv(sample_dir / "truth" / "cloud_fraction_communes.csv"):
        truth[row["commune"]][row["item_id"]] = float(row["cloud_fraction"])
    for code, geom in list(zip(codes, shapely.from_wkb(wkb)))[:4]:
        area = Area(geom, crs=meta["crs"])  # Lambert-93, as published
        for match in search(catalog, area):
            assert match.cloud_fraction == pytest.approx(truth[code][match.scene.id], abs=0.01)


def test_max_cloud_keeps_only_dates_clear_over_the_area(catalog, areas, sample_dir):
    truth = {r["item_id"]: float(r["cloud_fraction"])
             for r in read_csv(sample_dir / "truth" / "cloud_fraction.csv")
             if r["area"] == "guyane"}
    area, _ = areas["guyane"]
    kept = {m.scene.id for m in search(catalog, area, max_cloud=20)}
    assert kept == {item for item, fraction in truth.items() if fraction <= 0.20}
    with pytest.raises(InvalidInput, match="percentage"):
        search(catalog, area, max_cloud=150)


def test_masking_removes_every_cloudy_pixel(catalog, areas):
    scene = catalog.get("S2B_30UXU_20240118_0_L2A")  # 45 % cloud over Brittany
    cube = load_cube([scene], ["red", "scl"], native_grid(scene))
    masked = mask_clouds(cube).compute()
    scl = cube["scl"].values[0]
    cloudy = np.isin(scl, [3, 8, 9, 10])
    assert cloudy.mean() > 0.3
    assert np.isnan(masked["red"].values[0][cloudy]).all()
    assert not np.isnan(masked["red"].values[0][~cloudy]).any()


def test_median_composite_ndvi_matches_truth_for_crop_parcels(catalog, areas, sample_dir):
    area, epsg = areas["bretagne"]
    matches = search(catalog, area, parse_interval("2024-05-01/2024-08-31"), max_cloud=5)
    dates = [m.scene.date.isoformat() for m in matches]
    assert len(dates) == 3  # the clear summer dates
    grid = Grid.from_area(area, epsg, 10)
    cube = load_cube([m.scene for m in matches], ["red", "nir", "scl"], grid)
    ndvi = compute_index(composite(mask_clouds(cube), "median"), "NDVI").values

    meta, _, wkb, fields = pyogrio.raw.read(sample_dir / "vectors" / "bretagne-parcels.gpkg")
    names = list(meta["fields"])
    ids = fields[names.index("id")]
    crops = fields[names.index("landcover")] == "crop"
    utm = [Area(g, meta["crs"]).to_crs(epsg).geometry for g in shapely.from_wkb(wkb)]
    labels = rasterize(((g, i + 1) for i, g in enumerate(utm)), out_shape=grid.shape,
                       transform=grid.transform, dtype="int32")
    valid = ~np.isnan(ndvi)
    sums = np.bincount(labels[valid], weights=ndvi[valid], minlength=len(ids) + 1)
    counts = np.bincount(labels[valid], minlength=len(ids) + 1)

    per_date = defaultdict(dict)
    for row in read_csv(sample_dir / "truth" / "ndvi_parcels.csv"):
        if row["area"] == "bretagne" and row["date"] in dates:
            per_date[row["parcel_id"]][row["date"]] = float(row["ndvi_mean"])
    errors = []
    for index in np.flatnonzero(crops):
        truth = per_date.get(ids[index], {})
        if len(truth) == len(dates) and counts[index + 1]:
            mean = sums[index + 1] / counts[index + 1]
            errors.append(abs(mean - np.median(list(truth.values()))))
    errors = np.array(errors)
    assert len(errors) > 1000
    assert (errors <= 0.02).mean() >= 0.95


def test_latest_composite_takes_the_last_clear_value(catalog, areas):
    scenes = [catalog.get("S2B_30UXU_20240517_0_L2A"), catalog.get("S2B_30UXU_20241113_0_L2A")]
    cube = load_cube(scenes, ["red", "scl"], native_grid(scenes[0])).compute()
    latest = composite(mask_clouds(cube), "latest")["red"].values
    late_clear = ~np.isin(cube["scl"].values[1], [0, 1, 3, 8, 9, 10, 11])
    np.testing.assert_array_equal(latest[late_clear], cube["red"].values[1][late_clear])
    np.testing.assert_array_equal(latest[~late_clear], cube["red"].values[0][~late_clear])


def test_pixel_budget_is_checked_before_reading(catalog, areas):
    area, epsg = areas["guyane"]
    scenes = [m.scene for m in search(catalog, area)]
    with pytest.raises(TooLarge, match="limit is 1,000,000"):
        load_cube(scenes, ["red", "nir"], Grid.from_area(area, epsg, 10),
                  limits=Limits(max_pixels=1_000_000))
    with pytest.raises(InvalidInput, match="no readable asset"):
        load_cube(scenes, ["swir22"], Grid.from_area(area, epsg, 10))


def test_an_area_smaller_than_a_scl_pixel_still_finds_its_scenes(catalog, areas):
    """A 5 m square has no 20 m pixel centre inside: the pixels it touches count."""
    tiny = Area.from_bbox([605001, 5328001, 605006, 5328006], crs=32630)
    assert len(search(catalog, tiny)) == len(search(catalog, areas["bretagne"][0]))


def test_coarse_averaged_reads_use_the_cog_overview(catalog):
    """At 20 m with averaging the red band comes from the COG's overview; with nearest from
    the full-resolution pixels."""
    scene = catalog.get("S2B_30UXU_20240517_0_L2A")
    full = native_grid(scene)
    coarse = Grid(full.crs, full.transform * Affine.scale(2), (full.shape[0] // 2,
                                                                 full.shape[1] // 2))
    href = scene.assets["red"].href
    with rasterio.open(f"vrt://{href}?ovr=0") as ds:
        overview = ds.read(1)
    with rasterio.open(href) as ds:
        full_dn = ds.read(1)
    averaged = load_cube([scene], ["red"], coarse, resampling="average")["red"].values[0]
    nearest = load_cube([scene], ["red"], coarse, resampling="nearest")["red"].values[0]
    np.testing.assert_allclose(averaged, overview * 1e-4 - 0.1, atol=1e-6)
    # nearest picks one full-resolution pixel of each 2 × 2 block (which one is GDAL's choice)
    phases = [full_dn[i::2, j::2] * 1e-4 - 0.1 for i in (0, 1) for j in (0, 1)]
    assert any(np.allclose(nearest, phase, atol=1e-6) for phase in phases)
    assert not np.allclose(averaged, nearest, atol=1e-6)
