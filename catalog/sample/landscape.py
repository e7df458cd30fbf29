"""The ground truth of an area: communes, cadastral parcels and their covers, on the 10 m grid.

Everything is built as rasters on the imagery grid first and polygonised last, so parcel edges
follow pixel edges: the land-cover raster, the parcels and the statistics per parcel agree
exactly, whatever the reprojection of the vector layers (pixel centres stay 5 m away from any
edge).  Steps:

1. communes: Voronoi cells of the seeds in :mod:`areas`, with gently warped boundaries;
2. zones: rivers, lakes, towns, forests... painted from irregular polygons;
3. parcels: rectangles from a random binary split of the area, cut by communes and zones,
   slivers merged into a neighbour of the same commune, so every parcel lies in one commune
   and one zone;
4. covers: each parcel gets a cover (wheat, forest...) from its zone; the changed zone is made
   of its own parcels so that the change replaces whole parcels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import rasterio.features
import scipy.sparse
import shapely
from affine import Affine
from scipy.sparse.csgraph import connected_components

from .areas import Area
from .classes import COVERS
from .fields import rng, wave_field

OPEN, FOREST, SAVANNA, TOWN, WATER, CHANGE = range(1, 7)
ZONE_COVER = {TOWN: "built_up", WATER: "water", SAVANNA: "savanna"}
MIN_PARCEL_PX = 20  # 0.2 ha: smaller pieces are merged into a neighbour
SECTION_PX = 150  # cadastral sections are cut on a 1.5 km grid inside each commune


@dataclass(frozen=True)
class Parcels:
    """One row per parcel; index ``i`` is the value ``i`` of :attr:`Landscape.parcel_raster`."""

    ids: np.ndarray  # e.g. "35051000AB0012"
    commune: np.ndarray  # index into ``area.communes``
    section: np.ndarray
    numero: np.ndarray
    pixels: np.ndarray
    cover: np.ndarray  # cover name at the start of the year
    changed: np.ndarray  # bool: the parcel changes cover on ``area.change.date_after``


@dataclass
class Landscape:
    area: Area
    transform: Affine
    commune_raster: np.ndarray  # uint8 index into area.communes
    parcel_raster: np.ndarray  # int32 parcel index
    parcels: Parcels

    def covers_on(self, date: dt.date) -> np.ndarray:
        """Cover of each parcel on ``date`` (after the change from its first date on)."""
        covers = self.parcels.cover.copy()
        if date >= self.area.change.date_after:
            covers[self.parcels.changed] = self.area.change.cover_after
        return covers

    def class_raster(self, date: dt.date) -> np.ndarray:
        """The uint8 land-cover class of every pixel on ``date``."""
        classes = np.array([COVERS[c].land_class for c in self.covers_on(date)], dtype=np.uint8)
        return classes[self.parcel_raster]

    @cached_property
    def change_mask(self) -> np.ndarray:
        return self.parcels.changed[self.parcel_raster]

    @cached_property
    def parcel_polygons(self) -> np.ndarray:
        return polygonize(self.parcel_raster, len(self.parcels.ids), self.transform)

    @cached_property
    def commune_polygons(self) -> np.ndarray:
        return polygonize(self.commune_raster, len(self.area.communes), self.transform)


def build(area: Area, seed: int) -> Landscape:
    """The landscape of ``area`` for ``seed``."""
    zones = _zones(area, seed)
    communes = _communes(area, seed, zones == CHANGE)
    rectangles = np.zeros(zones.shape, np.int32)
    boxes = split_rectangles(area.size, area.size, area.landscape.parcel_ha,
                             rng(seed, "parcels", area.name))
    for i, (c0, r0, c1, r1) in enumerate(boxes):
        rectangles[r0:r1, c0:c1] = i
    _split_change_zone(rectangles, zones == CHANGE, area.change.parcels, len(boxes))

    key = (rectangles.astype(np.int64) * 8 + zones) * len(area.communes) + communes
    labels = connected_regions(key)
    zone_of = _value_per_label(labels, zones)
    labels = merge_small(labels, communes, zones, frozen=zone_of == CHANGE)
    zone_of = _majority_per_label(labels, zones)
    commune_of = _value_per_label(labels, communes)
    pixels = np.bincount(labels.ravel())

    covers = _covers(area, zone_of, rng(seed, "covers", area.name))
    sections, numeros = _number(labels, commune_of)
    codes = np.array([c.code for c in area.communes])[commune_of]
    ids = np.array([f"{c}000{s}{n:04d}" for c, s, n in zip(codes, sections, numeros)])
    order = np.argsort(ids)
    labels = np.argsort(order).astype(np.int32)[labels]
    parcels = Parcels(ids[order], commune_of[order], sections[order], numeros[order],
                      pixels[order], covers[order], (zone_of == CHANGE)[order])
    x0, y1 = area.origin
    return Landscape(area, Affine(10, 0, x0, 0, -10, y1), communes, labels, parcels)


def split_rectangles(width: int, height: int, hectares: tuple[float, float],
                     generator: np.random.Generator) -> np.ndarray:
    """Cadastre-like rectangles ``(col0, row0, col1, row1)`` tiling a ``width × height`` grid.

    Rectangles are halved (at 30–70 % of their longer side) until smaller than a target drawn
    in ``hectares`` (1 ha = 100 pixels of 10 m).
    """
    stack = [(0, 0, width, height)]
    out = []
    while stack:
        c0, r0, c1, r1 = stack.pop()
        if (c1 - c0) * (r1 - r0) <= generator.uniform(*hectares) * 100:
            out.append((c0, r0, c1, r1))
        elif c1 - c0 >= r1 - r0:
            cut = c0 + round((c1 - c0) * generator.uniform(0.3, 0.7))
            stack += [(c0, r0, cut, r1), (cut, r0, c1, r1)]
        else:
            cut = r0 + round((r1 - r0) * generator.uniform(0.3, 0.7))
            stack += [(c0, r0, c1, cut), (c0, cut, c1, r1)]
    return np.array(out, dtype=np.int64)


def connected_regions(key: np.ndarray) -> np.ndarray:
    """Label 4-connected regions of equal ``key`` values (int32, 0…n−1)."""
    h, w = key.shape
    index = np.arange(h * w).reshape(h, w)
    right = key[:, :-1] == key[:, 1:]
    down = key[:-1, :] == key[1:, :]
    starts = np.concatenate([index[:, :-1][right], index[:-1, :][down]])
    ends = np.concatenate([index[:, 1:][right], index[1:, :][down]])
    graph = scipy.sparse.coo_matrix((np.ones(starts.size, np.int8), (starts, ends)),
                                    shape=(h * w, h * w))
    _, labels = connected_components(graph, directed=False)
    return labels.reshape(h, w).astype(np.int32)


def merge_small(labels: np.ndarray, communes: np.ndarray, zones: np.ndarray,
                frozen: np.ndarray) -> np.ndarray:
    """Merge regions under :data:`MIN_PARCEL_PX` into a neighbour of the same commune: one of
    the same zone if any (so that rivers and towns keep their outline), the one sharing the
    longest border otherwise.  ``frozen`` regions never merge nor absorb."""
    while True:
        n = int(labels.max()) + 1
        sizes = np.bincount(labels.ravel(), minlength=n)
        commune_of = _value_per_label(labels, communes)
        zone_of = _value_per_label(labels, zones)
        small = np.flatnonzero((sizes < MIN_PARCEL_PX) & ~frozen[:n])
        if small.size == 0:
            break
        pairs = np.concatenate([
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1),
        ])
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        pairs = np.concatenate([pairs, pairs[:, ::-1]])
        codes, counts = np.unique(pairs[:, 0].astype(np.int64) * n + pairs[:, 1],
                                  return_counts=True)
        first, second = codes // n, codes % n
        target = np.arange(n)
        for label in small[np.argsort(sizes[small], kind="stable")]:
            mine = (first == label)
            candidates = second[mine]
            ok = (commune_of[candidates] == commune_of[label]) & ~frozen[candidates]
            if not ok.any():
                continue
            same_zone = zone_of[candidates[ok]] == zone_of[label]
            best = candidates[ok][np.argmax(counts[mine][ok] + same_zone * labels.size)]
            while target[best] != best:
                best = target[best]
            if best != label:
                target[label] = best
        if (target == np.arange(n)).all():
            break
        while not (target[target] == target).all():
            target = target[target]
        frozen_pixels = frozen[labels]
        _, labels = np.unique(target[labels], return_inverse=True)
        labels = labels.reshape(communes.shape).astype(np.int32)
        frozen = _value_per_label(labels, frozen_pixels)
    return labels


def polygonize(raster: np.ndarray, count: int, transform: Affine) -> np.ndarray:
    """One shapely polygon per value 0…count−1 of a raster of connected regions."""
    out = np.empty(count, dtype=object)
    for geometry, value in rasterio.features.shapes(raster.astype(np.int32), connectivity=4,
                                                    transform=transform):
        polygon = shapely.geometry.shape(geometry)
        value = int(value)
        out[value] = polygon if out[value] is None else out[value].union(polygon)
    return shapely.simplify(out, 0)


def _value_per_label(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The value of ``values`` at one pixel of each label (labels hold a single value)."""
    out = np.zeros(int(labels.max()) + 1, dtype=values.dtype)
    out[labels.ravel()] = values.ravel()
    return out


def _majority_per_label(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The most frequent of the (small, non-negative) ``values`` within each label."""
    span = int(values.max()) + 1
    counts = np.bincount(labels.ravel().astype(np.int64) * span + values.ravel(),
                         minlength=(int(labels.max()) + 1) * span)
    return counts.reshape(-1, span).argmax(axis=1).astype(values.dtype)


def _zones(area: Area, seed: int) -> np.ndarray:
    """Raster of zone codes (OPEN, FOREST, ...) painted from the landscape plan."""
    plan = area.landscape
    size = area.size
    generator = rng(seed, "zones", area.name)
    shapes = []

    def blobs(items, zone):
        for x, y, radius in items:
            shapes.append((_blob(x * size, y * size, radius / 10, generator), zone))

    def random_blobs(spec, zone):
        count, smallest, largest = spec
        for _ in range(count):
            x, y = generator.uniform(0.03, 0.97, 2)
            blobs([(x, y, generator.uniform(smallest, largest))], zone)

    blobs(plan.savannas, SAVANNA)
    blobs(plan.clearings, OPEN)
    random_blobs(plan.random_clearings, OPEN)
    blobs(plan.forests, FOREST)
    random_blobs(plan.random_woods, FOREST)
    blobs(plan.towns, TOWN)
    blobs(plan.lakes, WATER)
    for width, points in plan.rivers:
        line = shapely.LineString([(x * size, y * size) for x, y in points])
        shapes.append((_meander(line, generator).buffer(width / 20), WATER))
    background = FOREST if plan.background == "forest" else OPEN
    zones = rasterio.features.rasterize(shapes, out_shape=(size, size), fill=background,
                                        dtype=np.uint8)
    zones[_change_mask(area)] = CHANGE
    return zones


def _change_mask(area: Area) -> np.ndarray:
    mask = np.zeros((area.size, area.size), bool)
    for col, row, width, height in area.change.rectangles:
        mask[row:row + height, col:col + width] = True
    for col, row, width, height in area.change.holes:
        mask[row:row + height, col:col + width] = False
    return mask


def _blob(x: float, y: float, radius: float, generator: np.random.Generator) -> shapely.Polygon:
    """An irregular roundish polygon: a circle whose radius wobbles with a few harmonics."""
    theta = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    wobble = np.ones_like(theta)
    for k in (2, 3, 5):
        wobble += generator.uniform(0, 0.25 / k * 2) * np.sin(k * theta + generator.uniform(0, 6.3))
    return shapely.Polygon(np.column_stack([x + radius * wobble * np.cos(theta),
                                            y + radius * wobble * np.sin(theta)]))


def _meander(line: shapely.LineString, generator: np.random.Generator) -> shapely.LineString:
    """The polyline densified every 10 px and bent sideways by a smooth wobble."""
    distances = np.arange(0, line.length, 10.0)
    points = shapely.get_coordinates(shapely.line_interpolate_point(line, distances))
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(line, distances + 1))
    direction = ahead - points
    normal = np.column_stack([-direction[:, 1], direction[:, 0]])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    phase = generator.uniform(0, 6.3, 2)
    offset = 8 * np.sin(distances / 37 + phase[0]) + 4 * np.sin(distances / 13 + phase[1])
    return shapely.LineString(points + normal * offset[:, None])


def _communes(area: Area, seed: int, change: np.ndarray) -> np.ndarray:
    """Voronoi cells of the commune seeds, boundaries warped by a smooth field.

    The changed zone is given wholly to the commune of its centre so that it stays in one.
    """
    size = area.size
    index = np.arange(size)
    generator = rng(seed, "communes", area.name)
    warp_x = 12 * wave_field(index, index, generator, (150, 600))
    warp_y = 12 * wave_field(index, index, generator, (150, 600))
    cols = index[None, :] + warp_x
    rows = index[:, None] + warp_y
    best = np.full((size, size), np.inf)
    out = np.zeros((size, size), np.uint8)
    for i, commune in enumerate(area.communes):
        distance = np.hypot(cols - commune.seed[0] * size, rows - commune.seed[1] * size)
        closer = distance < best
        out[closer] = i
        best[closer] = distance[closer]
    rows_c, cols_c = np.nonzero(change)
    out[change] = out[int(rows_c.mean()), int(cols_c.mean())]
    return out


def _split_change_zone(rectangles: np.ndarray, change: np.ndarray, parts: int,
                       first_id: int) -> None:
    """Give the changed zone its own parcels: ``parts`` strips across its longer side."""
    rows, cols = np.nonzero(change)
    along_cols = np.ptp(cols) >= np.ptp(rows)
    position = cols if along_cols else rows
    edges = np.linspace(position.min(), position.max() + 1, parts + 1).round()
    rectangles[rows, cols] = first_id + np.searchsorted(edges, position, side="right") - 1


def _covers(area: Area, zone_of: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    plan = area.landscape
    names = [name for name, _ in plan.open_covers]
    weights = np.array([w for _, w in plan.open_covers])
    drawn = generator.choice(names, size=zone_of.size, p=weights / weights.sum())
    covers = np.array([ZONE_COVER.get(int(z), plan.forest_cover) for z in zone_of], dtype=object)
    covers[zone_of == OPEN] = drawn[zone_of == OPEN]
    covers[zone_of == CHANGE] = area.change.cover_before
    return covers.astype(str)


def _number(labels: np.ndarray, commune_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cadastral section (two letters, one per 1.5 km cell of a commune) and number (1…n in
    reading order) of every parcel."""
    n = commune_of.size
    rows, cols = np.indices(labels.shape)
    pixels = np.bincount(labels.ravel(), minlength=n)
    row_c = np.bincount(labels.ravel(), rows.ravel(), n) / pixels
    col_c = np.bincount(labels.ravel(), cols.ravel(), n) / pixels
    cell = (row_c // SECTION_PX).astype(int) * 1000 + (col_c // SECTION_PX).astype(int)
    sections = np.empty(n, dtype="<U2")
    numeros = np.zeros(n, dtype=int)
    for commune in np.unique(commune_of):
        mine = np.flatnonzero(commune_of == commune)
        for k, value in enumerate(np.unique(cell[mine])):
            members = mine[cell[mine] == value]
            sections[members] = chr(65 + k // 26) + chr(65 + k % 26)
            order = np.lexsort((col_c[members], row_c[members]))
            numeros[members[order]] = np.arange(1, members.size + 1)
    return sections, numeros
