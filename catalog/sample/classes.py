"""Land-cover classes and the covers (crop types, forest kinds...) that refine them, as data.

The truth rasters store the class code; the reflectance model needs more detail (wheat and
maize share class "crop" but not their seasons), so every parcel carries a *cover* and each
cover belongs to one class.  RPG codes are the French Land Parcel Identification codes, so the
agricultural parcels look like the real ``RPG`` layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class LandClass:
    code: int
    name: str  # English, also the ``landcover`` attribute of parcels
    name_fr: str
    is_tree: bool
    colour: tuple[int, int, int]


CLASSES: tuple[LandClass, ...] = (
    LandClass(1, "water", "eau", False, (46, 117, 182)),
    LandClass(2, "built-up", "bâti", False, (200, 40, 40)),
    LandClass(3, "bare soil", "sol nu", False, (190, 150, 100)),
    LandClass(4, "grassland", "prairie", False, (150, 210, 90)),
    LandClass(5, "crop", "culture", False, (240, 210, 60)),
    LandClass(6, "forest", "forêt", True, (20, 110, 40)),
    LandClass(7, "sparse vegetation", "végétation clairsemée", False, (180, 190, 120)),
)
CLASS_BY_CODE: Mapping[int, LandClass] = MappingProxyType({c.code: c for c in CLASSES})
WATER, BUILT_UP, BARE_SOIL, GRASSLAND, CROP, FOREST, SPARSE = (c.code for c in CLASSES)


@dataclass(frozen=True)
class Cover:
    """What grows on a parcel: its class, and its RPG crop code/group when it is farmed."""

    name: str
    land_class: int
    rpg_code: str | None = None
    rpg_group: str | None = None
    rpg_group_name: str | None = None


COVERS: Mapping[str, Cover] = MappingProxyType({c.name: c for c in (
    Cover("water", WATER),
    Cover("built_up", BUILT_UP),
    Cover("bare_soil", BARE_SOIL),
    Cover("permanent_grassland", GRASSLAND, "PPH", "18", "Prairies permanentes"),
    Cover("temporary_grassland", GRASSLAND, "PTR", "19", "Prairies temporaires"),
    Cover("winter_wheat", CROP, "BTH", "1", "Blé tendre"),
    Cover("winter_barley", CROP, "ORH", "3", "Orge"),
    Cover("maize", CROP, "MIS", "2", "Maïs grain et ensilage"),
    Cover("rapeseed", CROP, "CZH", "5", "Colza"),
    Cover("pasture", GRASSLAND),
    Cover("cassava", CROP),
    Cover("vegetables", CROP),
    Cover("deciduous_forest", FOREST),
    Cover("evergreen_forest", FOREST),
    Cover("savanna", SPARSE),
)})
