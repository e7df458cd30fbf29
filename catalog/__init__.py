"""Data access: STAC sources and provider presets, search, lazy cubes, SCL masks, composites.

Typical use::

    from sentinelle.catalog import Area, Grid, open_catalog, search, load_cube

    catalog = open_catalog("data/catalog")
    area = Area.from_bbox([-1.60, 48.08, -1.55, 48.12])
    matches = search(catalog, area, parse_interval("2024-05-01/2024-09-30"), max_cloud=20)
    cube = load_cube([m.scene for m in matches], ["red", "nir", "scl"],
                     Grid.from_area(area, matches[0].scene.epsg, 10))
"""

from sentinelle.catalog.area import Area, Grid, parse_crs
from sentinelle.catalog.composite import composite, mask_clouds
from sentinelle.catalog.cube import load_cube
from sentinelle.catalog.dates import Interval, parse_interval
from sentinelle.catalog.presets import PRESETS, get_preset
from sentinelle.catalog.scenes import Scene
from sentinelle.catalog.search import Match, cloud_fractions, search
from sentinelle.catalog.source import Catalog, StacApiCatalog, StaticCatalog, open_catalog

__all__ = [
    "Area", "Catalog", "Grid", "Interval", "Match", "PRESETS", "Scene", "StacApiCatalog",
    "StaticCatalog", "cloud_fractions", "composite", "get_preset", "load_cube", "mask_clouds",
    "open_catalog", "parse_crs", "parse_interval", "search",
]
