"""The answers the sample was generated from, so that analyses can be checked against them.

Land-cover rasters on the imagery grid, the expected NDVI per parcel and date, cloud fractions,
tree cover per commune and the changes.  Values come from the noiseless model, so results
computed from the images (after scale/offset and SCL masking) should match them within the
quantisation and noise of the DNs (≈ 0.001 for a parcel mean NDVI).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer

from .areas import Area
from .classes import CLASS_BY_CODE, CLASSES, COVERS, FOREST
from .imagery import write_cog
from .landscape import Landscape
from .scene import Rendering


@dataclass
class TruthTables:
    """Rows collected while rendering, written at the end by :meth:`write`."""

    ndvi: list[tuple] = field(default_factory=list)
    clouds: list[tuple] = field(default_factory=list)
    commune_clouds: list[tuple] = field(default_factory=list)
    tree_cover: list[tuple] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)

    def add_rendering(self, landscape: Landscape, item_id: str, date: dt.date,
                      rendering: Rendering, cloud_fraction: float) -> None:
        area = landscape.area
        parcels = landscape.parcels
        for parcel_id, value in zip(parcels.ids[rendering.parcel_clear],
                                    rendering.parcel_ndvi[rendering.parcel_clear]):
            self.ndvi.append((area.name, parcel_id, item_id, date.isoformat(),
                              f"{value:.5f}", "true"))
        self.clouds.append((area.name, item_id, date.isoformat(), f"{cloud_fraction:.6f}"))
        communes = landscape.commune_raster.ravel()
        size = len(area.communes)
        cloudy = np.bincount(communes, rendering.cloudy_10m.ravel(), size)
        fractions = cloudy / np.bincount(communes, minlength=size)
        for commune, fraction in zip(area.communes, fractions):
            self.commune_clouds.append((area.name, commune.code, item_id, date.isoformat(),
                                        f"{fraction:.6f}"))

    def add_landscape(self, landscape: Landscape) -> None:
        """Tree cover per commune before/after the change, and the change itself."""
        area = landscape.area
        communes = landscape.commune_raster.ravel()
        size = len(area.communes)
        pixels = np.bincount(communes, minlength=size)
        start = area.acquisitions[0].date
        before = np.bincount(communes, (landscape.class_raster(start) == FOREST).ravel(), size)
        after = np.bincount(communes, (landscape.class_raster(area.change.date_after)
                                       == FOREST).ravel(), size)
        for commune, b, a, n in zip(area.communes, before, after, pixels):
            self.tree_cover.append((area.name, commune.code, commune.name, f"{b / n:.6f}",
                                    f"{a / n:.6f}"))
        change = area.change
        outline = shapely.union_all(landscape.parcel_polygons[landscape.parcels.changed])
        transformer = Transformer.from_crs(area.epsg, 4326, always_xy=True)
        lonlat = shapely.transform(
            outline, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
        self.changes.append({
            "area": area.name,
            "kind": change.kind,
            "date_before": change.date_before.isoformat(),
            "date_after": change.date_after.isoformat(),
            "area_ha": round(int(landscape.change_mask.sum()) / 100, 2),
            "from_class": _class_name(change.cover_before),
            "to_class": _class_name(change.cover_after),
            "geometry": shapely.geometry.mapping(shapely.set_precision(lonlat, 1e-7)),
        })

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = [
            _csv(folder / "classes.csv", ("code", "name_fr", "name_en", "is_tree"),
                 [(c.code, c.name_fr, c.name, str(c.is_tree).lower()) for c in CLASSES]),
            _csv(folder / "ndvi_parcels.csv",
                 ("area", "parcel_id", "item_id", "date", "ndvi_mean", "clear"), self.ndvi),
            _csv(folder / "cloud_fraction.csv", ("area", "item_id", "date", "cloud_fraction"),
                 self.clouds),
            _csv(folder / "cloud_fraction_communes.csv",
                 ("area", "commune", "item_id", "date", "cloud_fraction"), self.commune_clouds),
            _csv(folder / "tree_cover_communes.csv",
                 ("area", "commune", "name", "tree_fraction", "tree_fraction_after"),
                 self.tree_cover),
        ]
        columns = ("area", "kind", "date_before", "date_after", "area_ha", "from_class",
                   "to_class")
        written.append(_csv(folder / "changes.csv", columns,
                            [tuple(c[k] for k in columns) for c in self.changes]))
        features = [{"type": "Feature", "properties": {k: c[k] for k in columns},
                     "geometry": c["geometry"]} for c in self.changes]
        path = folder / "changes.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                                   indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
        return written


def write_landcover(landscape: Landscape, folder: Path) -> Path:
    """``landcover-<area>.tif``: uint8 classes at the first date, with a colour table."""
    area: Area = landscape.area
    path = folder / f"landcover-{area.name}.tif"
    folder.mkdir(parents=True, exist_ok=True)
    write_cog(path, landscape.class_raster(area.acquisitions[0].date), landscape.transform,
              area.epsg, description="land cover", blocksize=256, categorical=True,
              colormap={0: (0, 0, 0), **{c.code: c.colour for c in CLASSES}})
    return path


def _class_name(cover: str) -> str:
    return CLASS_BY_CODE[COVERS[cover].land_class].name


def _csv(path: Path, header: tuple[str, ...], rows: list[tuple]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path
