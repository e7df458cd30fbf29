"""Theia/MAJA Level-2A products (the French land data centre's format) as a catalog.

Theia distributes one folder per acquisition and tile, without STAC metadata::

    SENTINEL2A_20160707-104025-456_L2A_T31UFQ_D_V1-1/
        SENTINEL2A_20160707-104025-456_L2A_T31UFQ_D_V1-1_FRE_B4.tif   (flat reflectance ×10,000)
        ...
        MASKS/SENTINEL2A_20160707-104025-456_L2A_T31UFQ_D_V1-1_CLM_R2.tif  (cloud bit field)

This module builds a STAC-like item per folder (id = folder name, date and tile from the
name, one asset per file keyed by its suffix: ``FRE_B4``, ``CLM_R2``…, footprint and grid from
the files' headers) and hands it to the same normaliser as any STAC item, with the ``theia``
preset: FRE bands are int16 reflectance × 10,000 with −10000 for nodata (not declared in the
files), clouds and shadows are the CLM bits.  Pointing a source at a folder of unzipped Theia
products is all a configuration needs.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Sequence

import rasterio
import shapely
from pyproj import Transformer

from sentinelle.catalog.base import ScenesCatalog, resolve_preset
from sentinelle.catalog.masks import parse_mask
from sentinelle.catalog.scenes import scene_from_item
from sentinelle.errors import SourceUnavailable

#: ``SENTINEL2A_20160707-104025-456_L2A_T31UFQ_D_V1-1``
FOLDER = re.compile(
    r"^(?P<platform>SENTINEL2[ABC])_(?P<date>\d{8})-(?P<time>\d{6})-(?P<ms>\d{3})_"
    r"(?P<level>L2A|L3A)_T(?P<tile>\d{2}[A-Z]{3})_(?P<kind>[A-Z])_V(?P<version>[\d-]+)$")
#: file suffixes kept as assets (reflectance bands and masks)
SUFFIX = re.compile(r"_(?P<key>(?:FRE|SRE)_B\d+A?|(?:CLM|MG2|EDG|SAT)_R[12])\.tif$",
                    re.IGNORECASE)


def product_folders(root: Path) -> list[Path]:
    """The Theia product folders directly under ``root`` (sorted by name)."""
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and FOLDER.match(p.name))
    except OSError:
        return []


def folder_version(root: Path) -> int:
    """Changes when a product folder is added or removed (the root's modification time)."""
    try:
        return root.stat().st_mtime_ns
    except OSError:
        return 0


def item_from_folder(folder: Path) -> dict:
    """A STAC item dict for one Theia product folder (assets keyed by file suffix)."""
    match = FOLDER.match(folder.name)
    if match is None:
        raise ValueError(f"{folder.name} is not a Theia product folder name")
    stamp = dt.datetime.strptime(match["date"] + match["time"], "%Y%m%d%H%M%S").replace(
        microsecond=int(match["ms"]) * 1000, tzinfo=dt.timezone.utc)
    assets, footprint, epsg = {}, None, None
    for path in sorted(folder.rglob("*.tif")):
        found = SUFFIX.search(path.name)
        if found is None:
            continue
        with rasterio.open(path) as ds:
            code = ds.crs.to_epsg() if ds.crs else None
            assets[found["key"].upper()] = {
                "href": str(path), "type": "image/tiff; application=geotiff",
                "proj:epsg": code, "proj:transform": list(ds.transform)[:6],
                "proj:shape": [ds.height, ds.width],
                "raster:bands": [{"data_type": ds.dtypes[0]}],
            }
            if footprint is None and code is not None:
                epsg = code
                to_lonlat = Transformer.from_crs(ds.crs, "OGC:CRS84", always_xy=True)
                box = shapely.segmentize(shapely.box(*ds.bounds), max(ds.res) * 16)
                footprint = shapely.transform(box, to_lonlat.transform, interleaved=False)
    if footprint is None:
        raise ValueError(f"{folder.name} holds no georeferenced FRE/SRE/CLM file")
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": folder.name,
        "collection": "SENTINEL2_L2A_THEIA",
        "geometry": shapely.geometry.mapping(footprint), "bbox": list(footprint.bounds),
        "properties": {
            "datetime": stamp.isoformat().replace("+00:00", "Z"),
            "platform": f"sentinel-2{match['platform'][-1].lower()}",
            "constellation": "sentinel-2", "proj:epsg": epsg,
            "theia:tile": match["tile"], "theia:version": match["version"],
            "processing:level": match["level"],
        },
        "links": [], "assets": assets,
    }


class TheiaCatalog(ScenesCatalog):
    """A folder of unzipped Theia/MAJA products (see the module docstring)."""

    def __init__(self, path: str | Path, preset: str = "theia", *, assets=None, mask=None,
                 collections: Sequence[str] | None = None, allow_remote: bool = False):
        self.path = Path(path).resolve()
        folders = product_folders(self.path)
        if not folders:
            raise SourceUnavailable(
                f"no Theia product folder (SENTINEL2X_YYYYMMDD-…_L2A_T…) in {self.path}")
        self.preset, _ = resolve_preset("theia" if preset == "auto" else preset, None, assets)
        self.preset_reason = ("auto-detected: Theia product folders (SENTINEL2X_…_L2A_T…)"
                              if preset == "auto" else "configured")
        self.mask = parse_mask(mask, self.preset.mask)
        scenes = []
        for folder in folders:
            try:
                item = item_from_folder(folder)
            except (ValueError, rasterio.errors.RasterioError) as err:
                raise SourceUnavailable(f"cannot read the Theia product {folder.name}: {err}") \
                    from err
            scenes.append(scene_from_item(item, self.preset))
        self._index(scenes)
