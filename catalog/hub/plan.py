"""What to fetch: upstream items over the areas of interest, filtered by clouds over each area,
and for each item the box to clip (in the item's own CRS, on its native pixel lattice).

Nothing here reads pixels except the SCL windows that measure clouds over the areas (through
:func:`sentinelle.catalog.search.cloud_fractions`, remote range reads); those decisions are kept
in the hub's state so that a second sync does not measure them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import shapely
import shapely.geometry

from sentinelle.catalog.area import Area, parse_crs
from sentinelle.catalog.hub.config import AreaSpec, HubConfig
from sentinelle.catalog.scenes import Scene, scene_from_item
from sentinelle.catalog.source import StacApiCatalog
from sentinelle.errors import InvalidInput, SourceUnavailable

#: Sentinel-2 tile origins are multiples of 60 m: a box snapped to 60 m holds whole 10, 20 and
#: 60 m pixels of every band, so all clipped bands cover exactly the same ground.
LATTICE = 60.0
#: merge two clip boxes when their union box has at most this share more pixels than both
MERGE_SLACK = 0.1


@dataclass(frozen=True)
class NamedArea:
    name: str
    area: Area


@dataclass
class ItemPlan:
    """One local item to produce: an upstream scene clipped to a box covering some areas."""

    id: str  # the local item id (the upstream id, suffixed by the area when split)
    scene: Scene
    raw: Mapping[str, Any]  # the upstream STAC item as published
    areas: tuple[str, ...]
    bounds: tuple[float, float, float, float] | None  # clip box in the scene CRS; None: whole
    cloud: dict[str, float | None] = field(default_factory=dict)  # area → fraction (0–1)

    @property
    def epsg(self) -> int:
        return self.scene.epsg


def _polygonal(geometries) -> shapely.Geometry | None:
    shapes = [shapely.from_wkb(g) for g in geometries if g is not None]
    shapes = [shapely.make_valid(s) if not s.is_valid else s for s in shapes]
    polygons = [s for s in shapes if s.geom_type in ("Polygon", "MultiPolygon")
                or (s.geom_type == "GeometryCollection" and s.area > 0)]
    return shapely.union_all(polygons) if polygons else None


def load_area(spec: AreaSpec) -> list[NamedArea]:
    """The areas of one entry: a lon/lat bbox, the union of a vector file's polygons, or one
    area per value of the ``split`` property (named after the value)."""
    if spec.bbox is not None:
        return [NamedArea(spec.name, Area.from_bbox(spec.bbox))]
    from pyogrio.raw import read as read_vector

    try:
        meta, _, geometries, fields = read_vector(
            spec.path, layer=spec.layer, read_geometry=True,
            columns=[spec.split] if spec.split else [])
    except Exception as err:
        raise InvalidInput(f"cannot read the area of interest {spec.path}: {err}") from err
    crs = parse_crs(meta.get("crs") or "OGC:CRS84")
    if spec.split:
        groups: dict[str, list] = {}
        for value, geometry in zip(fields[0], geometries):
            groups.setdefault(str(value).strip().replace("/", "-").replace(" ", "_"),
                              []).append(geometry)
        out = [NamedArea(name, Area(geometry, crs)) for name, geometry in
               ((n, _polygonal(g)) for n, g in sorted(groups.items())) if geometry is not None]
    else:
        union = _polygonal(geometries)
        out = [] if union is None else [NamedArea(spec.name, Area(union, crs))]
    if not out:
        raise InvalidInput(f"{spec.path} holds no polygon: an area of interest must be polygonal")
    return out


def load_areas(specs: Sequence[AreaSpec]) -> list[NamedArea]:
    areas = [named for spec in specs for named in load_area(spec)]
    names = [a.name for a in areas]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"area names must be unique, got {duplicates} twice; set name:")
    return areas


class UpstreamCatalog(StacApiCatalog):
    """:class:`StacApiCatalog` that also keeps the upstream items as published (asset titles,
    ``file:size``, extensions), which the mirror copies into its own items."""

    def find_items(self, area: Area | None, interval, *, limit: int | None = None
                   ) -> list[tuple[Scene, dict]]:
        import shapely.geometry as sg

        client = self._open()
        kwargs: dict[str, Any] = {"collections": self.collections, "max_items": limit}
        if area is not None:
            kwargs["intersects"] = sg.mapping(area.to_crs("OGC:CRS84").geometry)
        if interval is not None and (interval.start or interval.end):
            start = interval.start.isoformat() if interval.start else ".."
            end = interval.end.isoformat() if interval.end else ".."
            kwargs["datetime"] = f"{start}/{end}"
        try:
            items = list(client.search(**kwargs).items_as_dicts())
        except Exception as err:
            raise SourceUnavailable(f"search failed on the STAC API {self.url}: {err}") from err
        pairs = [(scene_from_item(item, self.preset), item) for item in items]
        return sorted(pairs, key=lambda p: (p[0].datetime, p[0].id))


def snapped_box(area: Area, epsg: int, lattice: float = LATTICE
                ) -> tuple[float, float, float, float]:
    """The area's bounds in ``epsg``, widened outward to multiples of ``lattice`` metres."""
    minx, miny, maxx, maxy = area.bounds_in(f"EPSG:{epsg}")
    return (math.floor(minx / lattice) * lattice, math.floor(miny / lattice) * lattice,
            math.ceil(maxx / lattice) * lattice, math.ceil(maxy / lattice) * lattice)


def part_boxes(area: Area, epsg: int, *, within: tuple[float, float, float, float] | None = None,
               lattice: float = LATTICE) -> list[tuple[float, float, float, float]]:
    """One snapped box per polygon of the area (cut to ``within``, the scene's extent, first):
    a commune with offshore islets must not become one box spanning the sea between them, and
    a long coastal strip crossing a tile only costs the part inside it."""
    geometry = area.to_crs(f"EPSG:{epsg}").geometry
    if within is not None:
        geometry = geometry.intersection(shapely.box(*within))
    parts = [p for p in getattr(geometry, "geoms", [geometry])
             if not p.is_empty and p.area > 0]
    boxes = [snapped_box(Area(part, parse_crs(epsg)), epsg, lattice) for part in parts]
    if within is not None:
        boxes = [(max(b[0], within[0]), max(b[1], within[1]), min(b[2], within[2]),
                  min(b[3], within[3])) for b in boxes]
    return [b for b in boxes if b[0] < b[2] and b[1] < b[3]]


def _box_area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def merge_boxes(boxes: Mapping[str, tuple[float, ...]], *, slack: float = MERGE_SLACK
                ) -> list[tuple[tuple[str, ...], tuple]]:
    """Merge two boxes into their union box when that costs at most ``slack`` more pixels than
    keeping both (their overlap counted twice): overlapping areas and close neighbours share
    one file, distant or diagonal ones keep tight boxes."""
    groups = [((name,), tuple(box)) for name, box in boxes.items()]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i][1], groups[j][1]
                box = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                if _box_area(box) <= (_box_area(a) + _box_area(b)) * (1 + slack):
                    groups[i] = (groups[i][0] + groups[j][0], box)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def scene_box(scene: Scene) -> tuple[float, float, float, float] | None:
    """The extent of the scene's rasters in its CRS, from ``proj:transform``/``proj:shape``."""
    boxes = []
    for asset in scene.assets.values():
        if asset.transform is None or asset.shape is None or asset.epsg != scene.epsg:
            continue
        a, _, c, _, e, f = asset.transform[:6]
        height, width = asset.shape
        boxes.append((c, f + e * height, c + a * width, f))
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def plan_items(pairs: Sequence[tuple[Scene, dict]], areas: Sequence[NamedArea],
               config: HubConfig, *,
               cloud_of: Callable[[Scene, NamedArea], float | None] | None = None
               ) -> tuple[list[ItemPlan], dict[str, str]]:
    """Item plans and the scenes left out with the reason (clouds, no data over the areas).

    ``cloud_of(scene, area)`` gives the cloud fraction of the area (``None``: no data there);
    it is only called when ``config.max_cloud`` is set.
    """
    plans: list[ItemPlan] = []
    skipped: dict[str, str] = {}
    for scene, raw in pairs:
        missing = [b for b in config.assets if b not in scene.assets]
        if missing:
            skipped[scene.id] = f"no asset for band(s) {', '.join(missing)}"
            continue
        if scene.epsg is None:
            skipped[scene.id] = "no CRS (proj:epsg / proj:code) in the item"
            continue
        kept: dict[str, float | None] = {}
        reasons = []
        for named in areas:
            if not named.area.intersects_lonlat(scene.footprint):
                continue
            fraction = None
            if config.max_cloud is not None and cloud_of is not None:
                fraction = cloud_of(scene, named)
                if fraction is None:
                    reasons.append(f"{named.name}: no data")
                    continue
                if fraction * 100 > config.max_cloud:
                    reasons.append(f"{named.name}: {fraction:.0%} cloud")
                    continue
            kept[named.name] = fraction
        if not kept:
            skipped[scene.id] = "; ".join(reasons) or "outside the areas"
            continue
        if config.whole:
            plans.append(ItemPlan(scene.id, scene, raw, tuple(kept), None,
                                  {k: v for k, v in kept.items()}))
            continue
        extent = scene_box(scene)
        boxes = {}
        for named in areas:
            if named.name not in kept:
                continue
            parts = part_boxes(named.area, scene.epsg, within=extent)
            for index, box in enumerate(parts):
                boxes[named.name if len(parts) == 1 else f"{named.name}-{index + 1}"] = box
        groups = merge_boxes(boxes)
        if not groups:
            skipped[scene.id] = "the areas miss the scene's rasters"
            continue
        for keys, box in groups:
            names = tuple(dict.fromkeys(k if k in kept else k.rsplit("-", 1)[0] for k in keys))
            item_id = scene.id if len(groups) == 1 else f"{scene.id}_{keys[0]}"
            plans.append(ItemPlan(item_id, scene, raw, names, box,
                                  {n: kept[n] for n in names}))
    return plans, skipped
