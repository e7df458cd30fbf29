"""The two sample areas as data: where they are, their communes, landscape, dates and change.

Keeping every choice here (and only code elsewhere) makes the sample easy to review and to
tweak.  Positions inside an area are relative: ``(x, y)`` with x from west (0) to east (1) and
y from north (0) to south (1).  Communes are real (names and INSEE codes) but their geometry is
synthetic: a Voronoi partition of the area around the seed points below, which only loosely
follow the real geography.

Grids: 10 m pixels, origin on a multiple of 20 m so that the 20 m grid nests and both coincide
with the Sentinel-2 tile grid (tile origins are 100 km multiples − 40 m / + 20 m).
MGRS tiles were checked with a lon/lat → UTM → 100 km square computation (see the tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Commune:
    code: str  # INSEE
    name: str
    seed: tuple[float, float]  # relative (x, y) of the synthetic Voronoi seed


@dataclass(frozen=True)
class Acquisition:
    date: dt.date
    platform: str  # "a" or "b": Sentinel-2A/2B alternate every 5 days on one orbit
    cloud: float  # fraction of the area under thick cloud (SCL 8 and 9)
    cirrus: float  # fraction under thin cirrus only (SCL 10)


@dataclass(frozen=True)
class Change:
    """A land-cover change between two consecutive acquisitions, on whole parcels."""

    kind: str  # "deforestation" | "new_built_up"
    date_before: dt.date
    date_after: dt.date
    #: pixel rectangles (col, row, width, height) whose union is the changed zone
    rectangles: tuple[tuple[int, int, int, int], ...]
    #: rectangles removed from that union (to get an irregular outline)
    holes: tuple[tuple[int, int, int, int], ...]
    parcels: int  # the zone is split into this many cadastral parcels
    cover_before: str
    cover_after: str


@dataclass(frozen=True)
class LandscapePlan:
    """Polygons painted in this order over the background: later ones win."""

    background: str  # zone of everything not painted: "open" (farmland) or "forest"
    savannas: tuple[tuple[float, float, float], ...]  # (x, y, radius m)
    clearings: tuple[tuple[float, float, float], ...]  # open land inside a forest background
    forests: tuple[tuple[float, float, float], ...]
    random_woods: tuple[int, float, float]  # count, min and max radius (m)
    random_clearings: tuple[int, float, float]
    towns: tuple[tuple[float, float, float], ...]
    lakes: tuple[tuple[float, float, float], ...]
    rivers: tuple[tuple[float, tuple[tuple[float, float], ...]], ...]  # (width m, polyline)
    forest_cover: str
    open_covers: tuple[tuple[str, float], ...]  # cover, probability of an open-land parcel
    parcel_ha: tuple[float, float]  # parcels are split until smaller than a target in this range


@dataclass(frozen=True)
class Area:
    name: str
    title: str
    epsg: int  # UTM zone of the imagery
    national_epsg: int  # CRS of the vector layers
    mgrs_tile: str
    origin: tuple[int, int]  # upper-left corner (x, y) in the UTM CRS
    size: int  # pixels of 10 m on each side
    time_utc: dt.time  # acquisition time of the first date (later ones drift by seconds)
    communes: tuple[Commune, ...]
    landscape: LandscapePlan
    acquisitions: tuple[Acquisition, ...]
    change: Change

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        x0, y1 = self.origin
        return (x0, y1 - self.size * 10, x0 + self.size * 10, y1)


D = dt.date

BRETAGNE = Area(
    name="bretagne",
    title="Rennes east (Cesson-Sévigné, Noyal-sur-Vilaine, Châteaugiron), Ille-et-Vilaine",
    epsg=32630,
    national_epsg=2154,
    mgrs_tile="30UXU",
    origin=(602960, 5333440),
    size=1000,
    time_utc=dt.time(11, 7, 19, 24000),
    communes=(
        Commune("35334", "Thorigné-Fouillard", (0.25, 0.05)),
        Commune("35001", "Acigné", (0.62, 0.12)),
        Commune("35327", "Servon-sur-Vilaine", (0.92, 0.12)),
        Commune("35051", "Cesson-Sévigné", (0.25, 0.38)),
        Commune("35207", "Noyal-sur-Vilaine", (0.62, 0.42)),
        Commune("35039", "Brécé", (0.9, 0.45)),
        Commune("35055", "Chantepie", (0.1, 0.68)),
        Commune("35204", "Nouvoitou", (0.4, 0.72)),
        Commune("35099", "Domloup", (0.66, 0.75)),
        Commune("35069", "Châteaugiron", (0.9, 0.88)),
        Commune("35352", "Vern-sur-Seiche", (0.1, 0.94)),
        Commune("35250", "Saint-Armel", (0.36, 0.95)),
    ),
    landscape=LandscapePlan(
        background="open",
        savannas=(),
        clearings=(),
        forests=((0.45, 0.07, 700), (0.3, 0.8, 400), (0.78, 0.6, 350), (0.5, 0.55, 280)),
        random_woods=(30, 50, 180),
        random_clearings=(0, 0, 0),
        towns=((0.17, 0.4, 850), (0.62, 0.44, 420), (0.88, 0.9, 480), (0.62, 0.1, 330),
               (0.66, 0.76, 240), (0.08, 0.7, 480), (0.92, 0.45, 200), (0.4, 0.72, 220)),
        lakes=((0.45, 0.6, 170), (0.8, 0.68, 110)),
        rivers=((35, ((0.0, 0.22), (0.12, 0.26), (0.22, 0.24), (0.35, 0.19), (0.5, 0.27),
                      (0.62, 0.24), (0.72, 0.21), (0.85, 0.29), (1.0, 0.26))),
                (20, ((0.55, 1.0), (0.5, 0.85), (0.52, 0.7), (0.47, 0.5), (0.5, 0.26)))),
        forest_cover="deciduous_forest",
        open_covers=(("winter_wheat", 0.2), ("winter_barley", 0.07), ("maize", 0.22),
                     ("rapeseed", 0.07), ("temporary_grassland", 0.16),
                     ("permanent_grassland", 0.23), ("bare_soil", 0.05)),
        parcel_ha=(2.0, 7.0),
    ),
    acquisitions=(
        Acquisition(D(2024, 1, 18), "b", 0.30, 0.05),
        Acquisition(D(2024, 2, 27), "b", 0.0, 0.0),
        Acquisition(D(2024, 3, 28), "b", 0.12, 0.03),
        Acquisition(D(2024, 4, 22), "a", 0.0, 0.04),
        Acquisition(D(2024, 5, 17), "b", 0.0, 0.0),
        Acquisition(D(2024, 6, 11), "a", 0.0, 0.0),
        Acquisition(D(2024, 7, 21), "a", 0.08, 0.0),
        Acquisition(D(2024, 8, 25), "b", 0.0, 0.0),
        Acquisition(D(2024, 10, 4), "b", 0.85, 0.05),
        Acquisition(D(2024, 11, 13), "b", 0.20, 0.10),
    ),
    change=Change(
        kind="new_built_up",
        date_before=D(2024, 5, 17),
        date_after=D(2024, 6, 11),
        rectangles=((262, 372, 40, 30),),
        holes=(),
        parcels=3,
        cover_before="permanent_grassland",
        cover_after="built_up",
    ),
)

GUYANE = Area(
    name="guyane",
    title="Montsinéry-Tonnegrande, west of Cayenne, French Guiana",
    epsg=32622,
    national_epsg=2972,
    mgrs_tile="22NCL",
    origin=(334200, 541260),
    size=1000,
    time_utc=dt.time(14, 3, 41, 512000),
    communes=(
        Commune("97304", "Kourou", (0.05, 0.15)),
        Commune("97305", "Macouria", (0.32, 0.08)),
        Commune("97302", "Cayenne", (0.85, 0.12)),
        Commune("97309", "Rémire-Montjoly", (0.95, 0.38)),
        Commune("97313", "Montsinéry-Tonnegrande", (0.38, 0.45)),
        Commune("97307", "Matoury", (0.75, 0.55)),
        Commune("97312", "Sinnamary", (0.05, 0.6)),
        Commune("97358", "Saint-Élie", (0.2, 0.86)),
        Commune("97310", "Roura", (0.6, 0.85)),
        Commune("97301", "Régina", (0.92, 0.92)),
    ),
    landscape=LandscapePlan(
        background="forest",
        savannas=((0.25, 0.08, 1800), (0.6, 0.1, 900)),
        clearings=((0.38, 0.4, 950), (0.8, 0.3, 900), (0.6, 0.72, 550)),
        forests=(),
        random_woods=(12, 60, 200),
        random_clearings=(14, 80, 260),
        towns=((0.38, 0.47, 330), (0.6, 0.7, 180), (0.96, 0.28, 550)),
        lakes=((0.12, 0.32, 150),),
        rivers=((110, ((0.0, 0.56), (0.15, 0.52), (0.28, 0.58), (0.42, 0.55), (0.55, 0.6),
                       (0.7, 0.53), (0.85, 0.58), (1.0, 0.5))),
                (30, ((0.3, 1.0), (0.33, 0.85), (0.28, 0.72), (0.3, 0.57)))),
        forest_cover="evergreen_forest",
        open_covers=(("pasture", 0.45), ("cassava", 0.2), ("vegetables", 0.15),
                     ("bare_soil", 0.2)),
        parcel_ha=(4.0, 25.0),
    ),
    acquisitions=(
        Acquisition(D(2024, 1, 10), "b", 0.25, 0.05),
        Acquisition(D(2024, 2, 19), "b", 0.0, 0.0),
        Acquisition(D(2024, 3, 20), "b", 0.15, 0.05),
        Acquisition(D(2024, 4, 24), "a", 0.35, 0.10),
        Acquisition(D(2024, 5, 29), "b", 0.90, 0.05),
        Acquisition(D(2024, 7, 13), "a", 0.0, 0.0),
        Acquisition(D(2024, 8, 12), "a", 0.0, 0.0),
        Acquisition(D(2024, 9, 16), "b", 0.05, 0.02),
        Acquisition(D(2024, 10, 21), "a", 0.0, 0.0),
        Acquisition(D(2024, 11, 25), "b", 0.20, 0.05),
    ),
    change=Change(
        kind="deforestation",
        date_before=D(2024, 7, 13),
        date_after=D(2024, 8, 12),
        rectangles=((170, 815, 60, 50),),
        holes=((210, 815, 20, 20),),
        parcels=2,
        cover_before="evergreen_forest",
        cover_after="bare_soil",
    ),
)

AREAS: tuple[Area, ...] = (BRETAGNE, GUYANE)

#: The full-size benchmark scene: the real extent of tile 30UXU (109.8 km), one clear date.
FULLSIZE_TILE = "30UXU"
FULLSIZE_ORIGIN = (599960, 5400020)
FULLSIZE_ACQUISITION = Acquisition(D(2024, 6, 11), "a", 0.0, 0.0)
