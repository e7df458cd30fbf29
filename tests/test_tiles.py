"""The tile fast path (:mod:`sentinelle.catalog.tiles`) gives exactly the pixels of the general
path (:func:`sentinelle.catalog.imagery.read_imagery`: SCL cloud search → stackstac/Dask cube →
mask → composite → clip) on the generated sample: Web-Mercator tiles from 10 m to overview
reads, Lambert-93 and lon/lat maps, cloudy dates, tiles cut by the area's edge, and a day with
two scenes (a composite).  The end-to-end check against rasterio/numpy reading the COGs is in
``test_wms.py``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pytest
import rasterio
from affine import Affine

from sentinelle.catalog import Catalog, Grid, open_catalog, parse_interval
from sentinelle.catalog.area import CRS84, parse_crs
from sentinelle.catalog.imagery import read_imagery
from sentinelle.catalog.sample import outline
from sentinelle.catalog.scenes import Asset
from sentinelle.catalog.tiles import POOL, day_scenes, read_dn, read_tile
from sentinelle.errors import NoData
from sentinelle.rendering import request_area

BANDS = ("blue", "green", "red", "nir", "swir16")
ORIGIN = 20037508.342789244


def xyz(x: int, y: int, z: int) -> tuple[float, float, float, float]:
    size = 2 * ORIGIN / 2 ** z
    return (-ORIGIN + x * size, ORIGIN - (y + 1) * size, -ORIGIN + (x + 1) * size,
            ORIGIN - y * size)


def tile_of(lon: float, lat: float, z: int) -> tuple[float, float, float, float]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return xyz(x, y, z)


@pytest.fixture(scope="module")
def catalog(sample_dir):
    return open_catalog(sample_dir / "catalog")


@pytest.fixture(scope="module")
def area_of(sample_dir):
    return lambda name: outline(sample_dir, name)


def both_paths(catalog, area, bbox, crs, date, *, size=(256, 256), method="median"):
    """(fast tile, general dataset computed) for a map of ``area`` over ``bbox``, read on the
    grid and with the resampling :func:`sentinelle.rendering.render_map` uses."""
    out_crs = parse_crs(crs)
    load_crs = parse_crs(4326) if out_crs == CRS84 else out_crs
    minx, miny, maxx, maxy = bbox
    resolution = min((maxx - minx) / size[0], (maxy - miny) / size[1])
    part = request_area(bbox, out_crs, area)
    grid = Grid.from_area(part, load_crs, resolution, anchor=(minx, maxy))
    ground = math.sqrt(part.to_crs(32630 if part.lonlat_bounds[0] > -10 else 32622)
                       .geometry.area / grid.npixels)
    resampling = "average" if ground > 10.1 else "nearest"
    interval = parse_interval(date)
    fast = read_tile(day_scenes(catalog, area, interval), part, BANDS, grid, method=method,
                     resampling=resampling)
    general = read_imagery(catalog, part, interval, BANDS, crs=load_crs, resolution=resolution,
                           method=method, mask=True, clip=True, resampling=resampling,
                           anchor=(minx, maxy)).compute()
    return fast, general, resampling


def assert_same(fast, general):
    assert fast.grid.transform.almost_equals(general.rio.transform())
    assert fast.grid.shape == (general.sizes["y"], general.sizes["x"])
    for band in BANDS:
        assert fast.bands[band].dtype == np.float32
        assert np.array_equal(fast.bands[band], general[band].values, equal_nan=True), band
    assert list(fast.scenes) == general.attrs["scenes"]
    assert list(fast.dates) == general.attrs["dates"]


@pytest.mark.parametrize("zoom, date, at", [
    (16, "2024-06-11", (-1.585, 48.085)),
    (15, "2024-07-21", (-1.575, 48.075)),   # clouds and shadows on that date
    (14, "2024-07-21", (-1.585, 48.085)),
    (13, "2024-06-11", (-1.585, 48.085)),   # ~13 m ground pixels: averaged
    (12, "2024-07-21", (-1.585, 48.085)),   # ~26 m: averaged from the COG overview
    (14, "2024-06-11", (-1.62, 48.06)),      # cut by the area's edge
])
def test_web_mercator_tiles_equal_the_general_path(catalog, area_of, zoom, date, at):
    fast, general, resampling = both_paths(catalog, area_of("bretagne"), tile_of(*at, zoom),
                                           "EPSG:3857", date)
    assert resampling == ("average" if zoom <= 13 else "nearest")
    assert_same(fast, general)
    red = fast.bands["red"]
    assert np.isfinite(red).mean() > 0.3  # a real picture, not an empty one
    if date == "2024-07-21" and zoom >= 14:
        assert np.isnan(red).any()  # clouds masked


@pytest.mark.parametrize("area, crs, bbox, date", [
    ("bretagne", "EPSG:2154", (359000.0, 6785500.0, 361000.0, 6787500.0), "2024-07-21"),
    ("bretagne", "OGC:CRS84", (-1.60, 48.07, -1.57, 48.10), "2024-06-11"),
    ("guyane", "EPSG:3857", tile_of(-52.46, 4.84, 14), "2024-04-24"),
    ("guyane", "EPSG:32622", (337000.0, 535000.0, 339560.0, 537560.0), "2024-05-29"),
])
def test_other_crs_and_areas_equal_the_general_path(catalog, area_of, area, crs, bbox, date):
    fast, general, _ = both_paths(catalog, area_of(area), bbox, crs, date)
    assert_same(fast, general)


class OneDayTwoScenes(Catalog):
    """The sample catalog plus a second scene on 2024-06-11 over Brittany: the 2024-07-21
    files re-dated (a real, readable scene; its clouds differ from the first one's)."""

    def __init__(self, base: Catalog):
        self.preset, self.mask = base.preset, base.mask
        second = next(s for s in base.scenes if s.id == "S2A_30UXU_20240721_0_L2A")
        when = dt.datetime(2024, 6, 11, 11, 20, tzinfo=dt.timezone.utc)
        self._scenes = sorted([*base.scenes, dataclasses.replace(
            second, id="S2X_30UXU_20240611_1_L2A", datetime=when)],
            key=lambda s: (s.datetime, s.id))

    def find(self, area=None, interval=None, *, limit=None):
        lonlat = area.to_crs("OGC:CRS84").geometry if area is not None else None
        return [s for s in self._scenes
                if (interval is None or interval.contains(s.datetime))
                and (lonlat is None or lonlat.intersects(s.footprint))][:limit]

    def get(self, scene_id):
        return next(s for s in self._scenes if s.id == scene_id)


@pytest.mark.parametrize("method", ["median", "latest", "max"])
def test_two_scenes_of_one_day_are_composited_like_the_general_path(catalog, area_of, method):
    two = OneDayTwoScenes(catalog)
    fast, general, _ = both_paths(two, area_of("bretagne"), tile_of(-1.575, 48.075, 15),
                                  "EPSG:3857", "2024-06-11", method=method)
    assert len(fast.scenes) == 2
    assert_same(fast, general)
    # where both scenes are clear the composite differs from either scene alone
    alone, _, _ = both_paths(catalog, area_of("bretagne"), tile_of(-1.575, 48.075, 15),
                             "EPSG:3857", "2024-06-11")
    assert not np.array_equal(fast.bands["nir"], alone.bands["nir"], equal_nan=True)


def test_a_tile_without_scene_is_no_data(catalog, area_of):
    area = area_of("bretagne")
    interval = parse_interval("2024-06-12")
    assert day_scenes(catalog, area, interval) == ()
    grid = Grid.from_area(area, 32630, 10.0)
    with pytest.raises(NoData):
        read_tile(day_scenes(catalog, area, interval), area, ["red"], grid)


def test_day_scenes_are_cached_per_catalog(catalog, area_of):
    area = area_of("bretagne")
    interval = parse_interval("2024-06-11")
    first = day_scenes(catalog, area, interval)
    assert [s.id for s in first] == [s.id for s in catalog.find(area, interval)]
    assert day_scenes(catalog, area, interval) is first  # no second search
    other = OneDayTwoScenes(catalog)  # another catalog object: its own answer
    assert len(day_scenes(other, area, interval)) == 2


def test_pooled_datasets_are_reopened_when_the_file_changes(tmp_path):
    path = tmp_path / "band.tif"
    transform = Affine(10, 0, 600000, 0, -10, 5330000)

    def write(value):
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1,
                           dtype="uint16", crs="EPSG:32630", transform=transform,
                           nodata=0) as ds:
            ds.write(np.full((1, 8, 8), value, dtype="uint16"))

    asset = Asset("red", str(path), 1e-4, 0.0, 0, 32630, tuple(transform)[:6], (8, 8), "B04")
    grid = Grid(parse_crs(32630), transform, (8, 8))
    write(1000)
    assert (read_dn(asset, grid) == 1000).all()
    assert (read_dn(asset, grid) == 1000).all()  # from the pool
    write(2000)
    assert (read_dn(asset, grid) == 2000).all()
    POOL.clear()
