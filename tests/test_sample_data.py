"""The synthetic sample data: generated once per module, then checked from the files alone
(rasterio, pyogrio, pystac, csv), independently of the generator's internals."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pystac
import pytest
import rasterio
import rasterio.features
import shapely
from pyproj import CRS, Transformer
from rio_cogeo.cogeo import cog_validate

from sentinelle.catalog.sample import generate

CLOUDY = (3, 8, 9, 10)
PARCEL_ID = re.compile(r"^\d{5}000[A-Z]{2}\d{4}$")
ITEM_ID = re.compile(r"^S2([AB])_(\d{2}[C-X][A-Z]{2})_(\d{8})_0_L2A$")
NATIONAL_EPSG = {"bretagne": 2154, "guyane": 2972}
TILES = {"bretagne": "30UXU", "guyane": "22NCL"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    summary = generate(out)
    assert summary["bytes"] > 0
    return out


@pytest.fixture(scope="module")
def items(sample) -> dict[str, list[dict]]:
    """Raw item dicts per area (from the item JSON files, as written)."""
    area_of = {tile: area for area, tile in TILES.items()}
    out = defaultdict(list)
    for path in sorted((sample / "catalog" / "sentinel-2-l2a").glob("*/*.json")):
        entry = json.loads(path.read_text())
        entry["_dir"] = path.parent
        out[area_of[entry["properties"]["s2:mgrs_tile"]]].append(entry)
    return out


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _read_layer(path: Path):
    meta, _, wkb, values = pyogrio.raw.read(path)
    fields = dict(zip(meta["fields"], values))
    return meta, shapely.from_wkb(wkb), fields


def _to_utm(geometries, src_epsg: int, dst_epsg: int):
    transformer = Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)
    return shapely.transform(
        geometries, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _reflectance(item: dict, key: str) -> np.ndarray:
    band = item["assets"][key]["raster:bands"][0]
    with rasterio.open(item["_dir"] / item["assets"][key]["href"]) as dataset:
        dn = dataset.read(1).astype(float)
    return np.where(dn == band["nodata"], np.nan, dn * band["scale"] + band["offset"])


def _grid(item: dict, key: str = "red") -> tuple[rasterio.Affine, tuple[int, int]]:
    asset = item["assets"][key]
    return rasterio.Affine(*asset["proj:transform"][:6]), tuple(asset["proj:shape"])


@pytest.fixture(scope="module")
def parcel_rasters(sample, items) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per area: parcel ids and the raster of parcel indices (−1 outside) on the 10 m grid."""
    out = {}
    for area, entries in items.items():
        _, geometries, fields = _read_layer(sample / "vectors" / f"{area}-parcels.gpkg")
        epsg = entries[0]["properties"]["proj:epsg"]
        utm = _to_utm(geometries, NATIONAL_EPSG[area], epsg)
        transform, shape = _grid(entries[0])
        raster = rasterio.features.rasterize(zip(utm, range(len(utm))), out_shape=shape,
                                             transform=transform, fill=-1, dtype="int32")
        out[area] = (np.asarray(fields["id"]), raster)
    return out


def test_layout_and_size(sample):
    for relative in ("README.md", "catalog/catalog.json", "catalog/sentinel-2-l2a/collection.json",
                     "vectors/areas.geojson", "truth/classes.csv", "truth/ndvi_parcels.csv",
                     "truth/cloud_fraction.csv", "truth/cloud_fraction_communes.csv",
                     "truth/tree_cover_communes.csv", "truth/changes.csv",
                     "truth/changes.geojson", "truth/landcover-bretagne.tif",
                     "truth/landcover-guyane.tif"):
        assert (sample / relative).is_file(), relative
    total = sum(p.stat().st_size for p in sample.rglob("*") if p.is_file())
    assert total < 60e6
    assert "synthetic" in (sample / "README.md").read_text().lower()


def test_deterministic(sample, tmp_path):
    again = tmp_path / "again"
    generate(again)

    def digests(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert digests(sample) == digests(again)


def test_every_tif_is_a_valid_cog(sample):
    tifs = sorted(sample.rglob("*.tif"))
    assert len(tifs) == 2 + 20 * 6
    for path in tifs:
        valid, errors, _ = cog_validate(path, quiet=True)
        assert valid, (path, errors)
        with rasterio.open(path) as dataset:
            assert dataset.nodata == 0
            assert dataset.compression.name.lower() in ("deflate", "zstd")
            assert dataset.block_shapes[0][0] in (256, 512)
            assert dataset.descriptions[0]
            if dataset.width > 256:
                assert dataset.overviews(1)


def test_stac_catalog(sample, items):
    catalog = pystac.Catalog.from_file(str(sample / "catalog" / "catalog.json"))
    read = list(catalog.get_items(recursive=True))
    assert len(read) == sum(len(v) for v in items.values())
    assert json.loads((sample / "catalog" / "catalog.json").read_text())["stac_version"] == "1.0.0"
    for area, entries in items.items():
        assert len(entries) >= 8
        assert len({e["properties"]["datetime"][:10] for e in entries}) == len(entries)
        assert min(e["properties"]["eo:cloud_cover"] for e in entries) == 0
        assert max(e["properties"]["eo:cloud_cover"] for e in entries) > 50
        hour = {"bretagne": "11", "guyane": "14"}[area]
        for entry in entries:
            props = entry["properties"]
            platform, tile, date = ITEM_ID.match(entry["id"]).groups()
            assert props["platform"] == f"sentinel-2{platform.lower()}"
            assert tile == props["s2:mgrs_tile"] == TILES[area]
            assert props["datetime"][:10].replace("-", "") == date
            assert props["datetime"][11:13] == hour
            assert props["grid:code"] == f"MGRS-{tile}"
            assert props["mgrs:utm_zone"] == int(tile[:2])
            assert props["mgrs:latitude_band"] + props["mgrs:grid_square"] == tile[2:]
            assert props["constellation"] == "sentinel-2"
            assert props["instruments"] == ["msi"]
            assert props["s2:processing_baseline"] == "05.10"
            assert props["s2:product_type"] == "S2MSI2A"
            assert props["earthsearch:boa_offset_applied"] is False
            assert props["proj:code"] == f"EPSG:{props['proj:epsg']}"
            assert any("projection/v1.1.0" in e for e in entry["stac_extensions"])
            assert any("raster/v1.1.0" in e for e in entry["stac_extensions"])
            assert any("eo/v1" in e for e in entry["stac_extensions"])
            footprint = shapely.geometry.shape(entry["geometry"])
            assert footprint.is_valid
            assert np.allclose(footprint.bounds, entry["bbox"])
            assert set(entry["assets"]) == {"blue", "green", "red", "nir", "swir16", "scl"}
            for key, asset in entry["assets"].items():
                assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
                band = asset["raster:bands"][0]
                with rasterio.open(entry["_dir"] / asset["href"]) as dataset:
                    assert dataset.crs == CRS.from_epsg(props["proj:epsg"])
                    assert tuple(dataset.transform)[:6] == tuple(asset["proj:transform"][:6])
                    assert [dataset.height, dataset.width] == asset["proj:shape"]
                    assert dataset.dtypes[0] == band["data_type"]
                if key == "scl":
                    assert asset["roles"] == ["data"] and "scale" not in band
                else:
                    assert asset["roles"] == ["data", "reflectance"]
                    assert (band["scale"], band["offset"]) == (0.0001, -0.1)
                    assert asset["eo:bands"][0]["common_name"] == key
            ten, twenty = entry["assets"]["red"], entry["assets"]["scl"]
            assert ten["proj:shape"] == [2 * s for s in twenty["proj:shape"]]
            assert ten["proj:transform"][2::3] == twenty["proj:transform"][2::3]


def _mgrs(lon: float, lat: float) -> str:
    """MGRS 100 km square of a point (standard lettering, northern hemisphere)."""
    zone = int((lon + 180) // 6) + 1
    band = "CDEFGHJKLMNPQRSTUVWX"[int((lat + 80) // 8)]
    x, y = Transformer.from_crs(4326, 32600 + zone, always_xy=True).transform(lon, lat)
    column = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3][int(x // 100000) - 1]
    row = "ABCDEFGHJKLMNPQRSTUV"[(int(y // 100000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}{band}{column}{row}"


def test_mgrs_tiles_match_the_footprints(items):
    assert _mgrs(2.35, 48.85) == "31UDQ"  # Paris, a known tile
    for area, entries in items.items():
        centre = shapely.geometry.shape(entries[0]["geometry"]).centroid
        assert _mgrs(centre.x, centre.y) == TILES[area]


def test_vectors(sample):
    folder = sample / "vectors"
    expected = {"bretagne-parcels", "bretagne-agri-parcels", "bretagne-communes",
                "bretagne-planning-zones", "guyane-parcels", "guyane-communes"}
    assert expected <= {p.stem for p in folder.glob("*.gpkg")}
    for name in expected:
        layers = pyogrio.list_layers(folder / f"{name}.gpkg")
        assert [row[0] for row in layers] == [name]
        meta, geometries, _ = _read_layer(folder / f"{name}.gpkg")
        area = name.split("-")[0]
        assert CRS.from_user_input(meta["crs"]).to_epsg() == NATIONAL_EPSG[area]
        assert shapely.is_valid(geometries).all(), name
        assert len(set(shapely.get_type_id(geometries).tolist())) == 1
        assert set(shapely.get_type_id(geometries).tolist()) <= {3, 6}

    for area in ("bretagne", "guyane"):
        _, communes, commune_fields = _read_layer(folder / f"{area}-communes.gpkg")
        assert len(communes) >= 10
        assert all(re.fullmatch(r"\d{5}", c) for c in commune_fields["code"])
        _, parcels, fields = _read_layer(folder / f"{area}-parcels.gpkg")
        assert len(parcels) >= (2000 if area == "bretagne" else 600)
        assert len(set(fields["id"])) == len(parcels)
        assert all(PARCEL_ID.match(i) for i in fields["id"])
        assert all(i.startswith(c) for i, c in zip(fields["id"], fields["commune"]))
        assert np.allclose(shapely.area(parcels), fields["area_m2"], rtol=1e-3)
        by_code = dict(zip(commune_fields["code"], communes))
        tree = shapely.STRtree(communes)
        points = shapely.point_on_surface(parcels)
        for point, parcel, commune in zip(points, parcels, fields["commune"]):
            hits = tree.query(point, predicate="within")
            assert [commune_fields["code"][h] for h in hits] == [commune]
            assert by_code[commune].buffer(0.05).covers(parcel)
        total = shapely.area(shapely.union_all(communes))
        assert np.isclose(total, shapely.area(parcels).sum(), rtol=1e-4)

    _, agri, fields = _read_layer(folder / "bretagne-agri-parcels.gpkg")
    assert {"BTH", "MIS", "CZH", "PPH", "PTR"} <= set(fields["crop"])
    assert len(agri) > 1000
    _, _, fields = _read_layer(folder / "bretagne-planning-zones.gpkg")
    assert set(fields["zone"]) == {"U", "AU", "A", "N"}
    outlines = json.loads((folder / "areas.geojson").read_text())
    assert {f["properties"]["area"] for f in outlines["features"]} == {"bretagne", "guyane"}


def test_landcover_truth(sample, items):
    classes = _csv(sample / "truth" / "classes.csv")
    codes = {int(c["code"]) for c in classes}
    assert {1, 2, 3, 4, 5, 6} <= codes
    assert [c["name_en"] for c in classes if c["is_tree"] == "true"] == ["forest"]
    for area, entries in items.items():
        with rasterio.open(sample / "truth" / f"landcover-{area}.tif") as dataset:
            data = dataset.read(1)
            assert dataset.dtypes[0] == "uint8" and dataset.nodata == 0
            assert dataset.colormap(1)
            assert (dataset.transform, dataset.shape) == _grid(entries[0])
        assert set(np.unique(data).tolist()) <= codes and 0 not in data
        assert (data == 6).mean() > (0.7 if area == "guyane" else 0.03)


def test_parcel_ndvi_matches_the_images(sample, items, parcel_rasters):
    expected = defaultdict(dict)
    for row in _csv(sample / "truth" / "ndvi_parcels.csv"):
        assert row["clear"] == "true"
        expected[row["item_id"]][row["parcel_id"]] = float(row["ndvi_mean"])
    for area, entries in items.items():
        ids, raster = parcel_rasters[area]
        inside = raster >= 0
        assert inside.all()
        for entry in entries:
            red, nir = _reflectance(entry, "red"), _reflectance(entry, "nir")
            ndvi = (nir - red) / (nir + red)
            labels = raster.ravel()
            counts = np.bincount(labels, minlength=len(ids))
            mean = np.bincount(labels, ndvi.ravel(), len(ids)) / counts
            with rasterio.open(entry["_dir"] / entry["assets"]["scl"]["href"]) as dataset:
                scl = dataset.read(1).repeat(2, 0).repeat(2, 1)
            cloudy = np.bincount(labels, np.isin(scl, CLOUDY).ravel(), len(ids)) > 0
            truth = expected[entry["id"]]
            assert set(truth) == set(ids[~cloudy])
            if truth:
                got = np.array([mean[i] for i in np.flatnonzero(~cloudy)])
                want = np.array([truth[p] for p in ids[~cloudy]])
                assert np.abs(got - want).max() < 0.005, entry["id"]


def test_clouds_follow_scl(sample, items):
    rows = {r["item_id"]: float(r["cloud_fraction"])
            for r in _csv(sample / "truth" / "cloud_fraction.csv")}
    communes = _csv(sample / "truth" / "cloud_fraction_communes.csv")
    assert {r["item_id"] for r in communes} == set(rows)
    for entries in items.values():
        for entry in entries:
            with rasterio.open(entry["_dir"] / entry["assets"]["scl"]["href"]) as dataset:
                scl = dataset.read(1)
            assert abs(rows[entry["id"]] - np.isin(scl, CLOUDY).mean()) < 1e-6
            percent = np.isin(scl, (8, 9, 10)).mean() * 100
            assert abs(entry["properties"]["eo:cloud_cover"] - percent) < 1e-3
            assert set(np.unique(scl).tolist()) <= {3, 4, 5, 6, 8, 9, 10}
            # masking with SCL removes every bright (cloudy) 10 m pixel
            blue = _reflectance(entry, "blue")
            clear = ~np.isin(scl.repeat(2, 0).repeat(2, 1), CLOUDY)
            assert np.nanmax(blue[clear]) < 0.2
            if rows[entry["id"]] > 0.05:
                assert np.nanmax(blue[~clear]) > 0.3


def test_changes_match_the_images(sample, items):
    changes = _csv(sample / "truth" / "changes.csv")
    shapes = json.loads((sample / "truth" / "changes.geojson").read_text())["features"]
    assert {c["kind"] for c in changes} == {"deforestation", "new_built_up"}
    tree_cover = _csv(sample / "truth" / "tree_cover_communes.csv")
    for change, feature in zip(changes, shapes):
        assert feature["properties"]["kind"] == change["kind"]
        entries = {e["properties"]["datetime"][:10]: e for e in items[change["area"]]}
        dates = sorted(entries)
        assert dates.index(change["date_after"]) == dates.index(change["date_before"]) + 1
        before, after = entries[change["date_before"]], entries[change["date_after"]]
        transform, shape = _grid(before)
        polygon = _to_utm(shapely.geometry.shape(feature["geometry"]), 4326,
                          before["properties"]["proj:epsg"])
        mask = rasterio.features.rasterize([(polygon, 1)], out_shape=shape,
                                           transform=transform).astype(bool)
        assert mask.sum() / 100 == pytest.approx(float(change["area_ha"]), abs=0.01)
        with rasterio.open(sample / "truth" / f"landcover-{change['area']}.tif") as dataset:
            start = dataset.read(1)
        name_to_code = {c["name_en"]: int(c["code"])
                        for c in _csv(sample / "truth" / "classes.csv")}
        assert (start[mask] == name_to_code[change["from_class"]]).all()
        ndvi = {}
        for when, entry in (("before", before), ("after", after)):
            red, nir = _reflectance(entry, "red"), _reflectance(entry, "nir")
            ndvi[when] = np.mean(((nir - red) / (nir + red))[mask])
        assert ndvi["before"] > 0.6 and ndvi["after"] < 0.2
    guyane = [r for r in tree_cover if r["area"] == "guyane"]
    assert any(float(r["tree_fraction_after"]) < float(r["tree_fraction"]) for r in guyane)


def test_full_size_scene_structure(tmp_path):
    summary = generate(tmp_path, tile_size=2048)
    catalog = pystac.Catalog.from_file(str(tmp_path / "catalog" / "catalog.json"))
    (item,) = catalog.get_items(recursive=True)
    assert item.properties["s2:mgrs_tile"] == "30UXU"
    assert item.assets["red"].extra_fields["proj:shape"] == [2048, 2048]
    for key, size in (("red", 2048), ("swir16", 1024), ("scl", 1024)):
        path = tmp_path / "catalog" / "sentinel-2-l2a" / item.id / Path(
            item.assets[key].href).name
        assert cog_validate(path, quiet=True)[0]
        with rasterio.open(path) as dataset:
            assert dataset.shape == (size, size)
            assert dataset.transform.c == 599960 and dataset.transform.f == 5400020
            assert 0 not in dataset.read(1, out_shape=(64, 64))
    meta, parcels, _ = _read_layer(tmp_path / "vectors" / "fullsize-parcels.gpkg")
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 32630
    assert len(parcels) == summary["parcels"] > 1000
    assert np.isclose(shapely.area(parcels).sum(), (2048 * 10) ** 2)
