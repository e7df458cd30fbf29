"""Entry-point parsing shared by every adapter: areas, grids, CRSs and datetimes."""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from pyproj import Transformer

from sentinelle.catalog.area import Area, Grid, crs_uri, parse_crs, validate_bbox
from sentinelle.catalog.dates import parse_interval


@pytest.mark.parametrize("value, epsg", [
    ("EPSG:2154", 2154), ("2154", 2154), (2972, 2972),
    ("http://www.opengis.net/def/crs/EPSG/0/3857", 3857)])
def test_parse_crs(value, epsg):
    assert parse_crs(value).to_epsg() == epsg


def test_crs84_round_trip():
    crs = parse_crs("http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    assert crs_uri(crs).endswith("CRS84")
    with pytest.raises(ValueError, match="unknown CRS"):
        parse_crs("EPSG:99999999")


@pytest.mark.parametrize("bbox, words", [
    ([1, 2, 3], "4 numbers"), (["a", 1, 2, 3], "numbers"), ([3, 1, 2, 4], "min < max"),
    ([-200, 0, 10, 10], "longitude"), ([0, 0, float("nan"), 1], "finite")])
def test_bad_bbox(bbox, words):
    with pytest.raises(ValueError, match=words):
        validate_bbox(bbox)


def test_area_reprojection_and_grid_snapping():
    area = Area.from_bbox([-1.60, 48.08, -1.55, 48.12])
    utm = area.to_crs(32630)
    to_utm = Transformer.from_crs(4326, 32630, always_xy=True)
    x, y = to_utm.transform(-1.60, 48.08)
    assert utm.geometry.distance(shapely.Point(x, y)) < 1
    grid = Grid.from_area(area, 32630, 20)
    minx, miny, maxx, maxy = grid.bounds
    assert minx % 20 == 0 and maxy % 20 == 0
    assert grid.transform.a == 20 and grid.transform.e == -20
    bounds = utm.bounds
    assert minx <= bounds[0] and maxx >= bounds[2] and miny <= bounds[1] and maxy >= bounds[3]
    shifted = Grid.from_area(area, 32630, 120, anchor=(499980, 5100000))
    assert (shifted.bounds[0] - 499980) % 120 == 0


def test_area_from_geojson_repairs_and_rejects():
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    assert Area.from_geojson(bowtie).geometry.is_valid
    with pytest.raises(ValueError, match="Polygon"):
        Area.from_geojson({"type": "Point", "coordinates": [0, 0]})
    with pytest.raises(ValueError, match="GeoJSON"):
        Area.from_geojson({"type": "Polygon", "coordinates": "nope"})


def test_intervals():
    day = parse_interval("2024-06-12")
    assert day.start == dt.datetime(2024, 6, 12, tzinfo=dt.timezone.utc)
    assert day.contains(dt.datetime(2024, 6, 12, 11, 3, tzinfo=dt.timezone.utc))
    assert not day.contains(dt.datetime(2024, 6, 13, 0, 0, 1, tzinfo=dt.timezone.utc))
    open_end = parse_interval("2024-06-01/..")
    assert open_end.end is None and open_end.contains(dt.datetime(2030, 1, 1,
                                                                  tzinfo=dt.timezone.utc))
    instant = parse_interval("2024-06-12T11:00:00Z")
    assert instant.start == instant.end
    for bad in ("2024-13-01", "yesterday", "2024-06-01/2024-05-01", "a/b/c"):
        with pytest.raises(ValueError):
            parse_interval(bad)
