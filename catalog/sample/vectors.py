"""Vector layers of the sample: cadastral parcels, RPG-like agricultural parcels, communes,
PLU-like planning zones, written as one-layer GeoPackages in the national CRSs.

Geometries come from the landscape rasters (edges on the 10 m grid, see :mod:`landscape`) and
are reprojected vertex by vertex; edges are 10 m or longer, so they stay valid.  GeoPackages
store a "last change" timestamp: it is pinned with ``OGR_CURRENT_DATE`` so that the files are
byte-for-byte reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from pyproj import Transformer

from .areas import AREAS, Area
from .classes import CLASS_BY_CODE, COVERS
from .imagery import footprint
from .landscape import Landscape, connected_regions, polygonize

PINNED_DATE = "2024-12-31T00:00:00.000Z"
PLANNING = {
    "U": "Zone urbaine",
    "AU": "Zone à urbaniser",
    "A": "Zone agricole",
    "N": "Zone naturelle et forestière",
}
_CLASS_ZONE = {"built-up": "U", "bare soil": "A", "grassland": "A", "crop": "A",
               "forest": "N", "water": "N", "sparse vegetation": "N"}


@contextmanager
def pinned_timestamps() -> Iterator[None]:
    """Make GDAL write a fixed date in GeoPackage metadata (reproducible files)."""
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": PINNED_DATE})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def write_layer(path: Path, geometries: np.ndarray, fields: Mapping[str, np.ndarray], *,
                src_epsg: int, dst_epsg: int) -> Path:
    """One GeoPackage holding one polygon layer named like the file."""
    if src_epsg != dst_epsg:
        transformer = Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)
        geometries = shapely.transform(
            geometries, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    kinds = set(shapely.get_type_id(geometries).tolist())
    geometry_type = "Polygon" if kinds == {3} else "MultiPolygon"
    if geometry_type == "MultiPolygon":
        geometries = np.array([g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g])
                               for g in geometries], dtype=object)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with pinned_timestamps():
        pyogrio.raw.write(
            path, shapely.to_wkb(geometries), field_data=[_column(v) for v in fields.values()],
            fields=list(fields), layer=path.stem, driver="GPKG", geometry_type=geometry_type,
            crs=f"EPSG:{dst_epsg}",
        )
    return path


def write_area(landscape: Landscape, out: Path) -> dict[str, Path]:
    """Parcels and communes of an area; agricultural parcels and planning zones when the area
    has RPG crops (Brittany)."""
    area = landscape.area
    parcels = landscape.parcels
    codes = np.array([c.code for c in area.communes])
    classes = np.array([CLASS_BY_CODE[COVERS[c].land_class].name for c in parcels.cover])
    geometries = landscape.parcel_polygons
    crs = {"src_epsg": area.epsg, "dst_epsg": area.national_epsg}
    written = {}
    written["parcels"] = write_layer(out / f"{area.name}-parcels.gpkg", geometries, {
        "id": parcels.ids,
        "commune": codes[parcels.commune],
        "section": parcels.section,
        "numero": parcels.numero.astype(np.int32),
        "area_m2": (parcels.pixels * 100).astype(np.int64),
        "landcover": classes,
    }, **crs)
    written["communes"] = write_layer(out / f"{area.name}-communes.gpkg",
                                      landscape.commune_polygons, {
        "code": codes,
        "name": np.array([c.name for c in area.communes]),
    }, **crs)
    farmed = np.array([COVERS[c].rpg_code is not None for c in parcels.cover])
    if not farmed.any():
        return written
    rpg = [COVERS[c] for c in parcels.cover[farmed]]
    written["agri-parcels"] = write_layer(out / f"{area.name}-agri-parcels.gpkg",
                                          geometries[farmed], {
        "id": parcels.ids[farmed],
        "commune": codes[parcels.commune[farmed]],
        "crop": np.array([c.rpg_code for c in rpg]),
        "crop_group": np.array([c.rpg_group for c in rpg]),
        "crop_group_name": np.array([c.rpg_group_name for c in rpg]),
        "area_ha": parcels.pixels[farmed] / 100.0,
    }, **crs)
    zones, zone_commune, polygons = planning_zones(landscape)
    written["planning-zones"] = write_layer(out / f"{area.name}-planning-zones.gpkg", polygons, {
        "id": zone_ids(codes[zone_commune], zones),
        "zone": zones,
        "label": np.array([PLANNING[z] for z in zones]),
        "commune": codes[zone_commune],
    }, **crs)
    return written


def zone_ids(communes: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """Identifiers like ``35051-AU-02``: commune, zone type, rank within the commune."""
    seen: dict[tuple[str, str], int] = {}
    ids = []
    for commune, zone in zip(communes, zones):
        rank = seen[(commune, zone)] = seen.get((commune, zone), 0) + 1
        ids.append(f"{commune}-{zone}-{rank:02d}")
    return np.array(ids)


def planning_zones(landscape: Landscape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PLU-like zones: U on built-up, AU on the future built-up area, A on farmland, N on
    forest, water and natural land; one polygon per connected zone of a commune."""
    names = list(PLANNING)
    classes = np.array([CLASS_BY_CODE[COVERS[c].land_class].name
                        for c in landscape.parcels.cover])
    parcel_zone = np.array([names.index(_CLASS_ZONE[c]) for c in classes])
    parcel_zone[landscape.parcels.changed] = names.index("AU")
    zone_raster = parcel_zone[landscape.parcel_raster]
    regions = connected_regions(zone_raster * 256 + landscape.commune_raster)
    count = int(regions.max()) + 1
    zone_of = np.zeros(count, int)
    zone_of[regions.ravel()] = zone_raster.ravel()
    commune_of = np.zeros(count, int)
    commune_of[regions.ravel()] = landscape.commune_raster.ravel()
    polygons = polygonize(regions, count, landscape.transform)
    return np.array(names)[zone_of], commune_of, polygons


def write_areas_geojson(path: Path, areas: tuple[Area, ...] = AREAS) -> Path:
    """Outlines of the sample areas in CRS84."""
    features = [{"type": "Feature", "properties": {"area": a.name, "epsg": a.epsg},
                 "geometry": footprint(a.bounds, a.epsg)} for a in areas]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1)
                    + "\n", encoding="utf-8")
    return path


def _column(values: np.ndarray) -> np.ndarray:
    return values.astype(object) if values.dtype.kind == "U" else values
