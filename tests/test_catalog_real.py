"""The catalog layer on real providers' metadata and pixels (../shared/data), checked against
rasterio reading the files directly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from sentinelle.analysis.indices import compute_index
from sentinelle.catalog import Area, Grid, load_cube, open_catalog, parse_interval, search
from sentinelle.catalog.presets import get_preset, guess_preset
from sentinelle.catalog.scenes import scene_from_item


@pytest.fixture(scope="module")
def croatia(shared_data):
    return open_catalog(shared_data / "earthsearch-v1-croatia")


def test_relative_hrefs_made_absolute_and_remote_assets_dropped(croatia):
    scene = croatia.get("S2A_33TWL_20230815_0_L2A")
    assert set(scene.assets) == {"blue", "green", "red", "nir", "scl"}  # the local ones only
    for asset in scene.assets.values():
        assert asset.href.startswith("/") and asset.href.endswith(".tif")
        assert not asset.is_remote


def test_offset_already_applied_is_not_applied_twice(croatia):
    scene = croatia.get("S2A_33TWL_20230815_0_L2A")
    assert scene.properties["earthsearch:boa_offset_applied"] is True
    assert scene.assets["red"].scale == pytest.approx(1e-4)
    assert scene.assets["red"].offset == 0.0


def test_cube_equals_rasterio_read_through_sidecar_georeferencing(croatia):
    """The .tif files are JPEG 2000 georeferenced by .aux.xml sidecars."""
    scene = croatia.get("S2A_33TWL_20230815_0_L2A")
    with rasterio.open(scene.assets["red"].href) as ds:
        expected = ds.read(1)
        transform, crs, shape = ds.transform, ds.crs, ds.shape
    assert crs is not None and crs.to_epsg() == 32633
    x0, y1 = transform.c, transform.f
    area = Area.from_bbox([x0, y1 - 120 * shape[0], x0 + 120 * shape[1], y1], crs="EPSG:32633")
    grid = Grid.from_area(area, 32633, 120, anchor=(x0, y1))
    assert grid.shape == shape
    cube = load_cube([scene], ["red", "scl"], grid).compute()
    red = cube["red"].values[0]
    dn = np.where(np.isnan(red), 0, np.round(red / 1e-4)).astype("uint16")
    np.testing.assert_array_equal(dn, expected)
    with rasterio.open(scene.assets["scl"].href) as ds:
        np.testing.assert_array_equal(cube["scl"].values[0], ds.read(1))


def test_ndvi_over_vegetation_stays_within_0_and_1(croatia):
    """With the declared −0.1 offset wrongly re-applied, NDVI over vegetation exceeds 1."""
    area = Area.from_bbox([15.6, 45.6, 15.9, 45.9])
    matches = search(croatia, area, parse_interval("2023-08-01/2023-08-31"))
    assert len(matches) == 5
    cube = load_cube([m.scene for m in matches], ["red", "nir", "scl"],
                     Grid.from_area(area, 32633, 120)).compute()
    ndvi = compute_index(cube, "NDVI").where(cube["scl"] == 4).values
    values = ndvi[~np.isnan(ndvi)]
    assert values.size > 100_000
    assert values.max() <= 1.0
    # a handful of 120 m mixed pixels at cloud edges are slightly negative in the real data
    assert (values >= 0).mean() > 0.999
    assert 0.75 < np.median(values) < 0.9
    nir, red = cube["nir"] - 0.1, cube["red"] - 0.1
    wrong = (nir - red) / (nir + red)
    assert float((wrong.where(cube["scl"] == 4) > 1).sum()) > 1000


def test_cloud_fraction_over_area_from_scl_matches_direct_count(croatia):
    scene = croatia.get("S2B_33TWL_20230810_0_L2A")
    area = Area.from_bbox([15.3, 45.3, 15.6, 45.6])
    [match] = [m for m in search(croatia, area, parse_interval("2023-08-10"))
               if m.scene.id == scene.id]
    grid = Grid.from_area(area, 32633, 20)
    with rasterio.open(scene.assets["scl"].href) as ds:
        window = ds.window(*grid.bounds)
        scl = ds.read(1, window=window.round_offsets().round_lengths())
    # an independent count at the file's native 120 m
    observed = scl[scl != 0]
    expected = np.isin(observed, [3, 8, 9, 10]).mean()
    assert match.cloud_fraction == pytest.approx(expected, abs=0.02)
    assert scene.cloud_cover is not None  # the tile-wide figure is a different number
    assert abs(match.cloud_fraction * 100 - scene.cloud_cover) > 1


def test_max_cloud_filters_on_the_area_not_the_tile(croatia):
    area = Area.from_bbox([15.6, 45.6, 15.9, 45.9])
    clear = search(croatia, area, parse_interval("2023-08-01/2023-08-31"), max_cloud=10)
    assert clear and all(m.cloud_fraction <= 0.10 for m in clear)
    assert len(clear) < 5


@pytest.mark.parametrize("name, preset, red_key, offset", [
    ("pystac-client__earth-search-v1__S2A_13TDE_20231008_0_L2A.json", "earth-search",
     "red", 0.0),
    ("xcube-stac__cdse__S2B_MSIL2A_20200705T101559_N0500_R065_T32TNT_20230530T175912.json",
     "cdse", "B04_10m", -0.1),
    ("odc-stac__S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json",
     "planetary-computer", "B04", 0.0),
    ("rio-tiler-crs__earth-search-v0__S2A_34SGA_20200318_0_L2A.json", "earth-search-v0",
     "B04", 0.0),
])
def test_presets_map_real_provider_items(shared_data, name, preset, red_key, offset):
    item = json.loads((shared_data / "stac-items" / name).read_text())
    assert guess_preset(item)[0].name == preset
    scene = scene_from_item(item, get_preset(preset))
    assert {"red", "nir", "scl"} <= set(scene.assets)
    assert scene.assets["red"].source_key == red_key
    assert scene.assets["red"].offset == pytest.approx(offset)
    assert scene.epsg is not None and 32600 < scene.epsg < 32800
    if preset == "cdse":  # s3:// hrefs replaced by the https alternate
        assert scene.assets["red"].href.startswith("https://")
