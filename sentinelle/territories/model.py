"""Territories as data: one configuration block per territory, parsed and checked once.

A territory is a place a regional SDI serves (a region, a département, a group of communes):
its titles (French first, English), its **area** (a GeoJSON/GeoPackage file with an optional
CQL2 filter, a served collection with a CQL2 filter — e.g. the communes of one département —
or a bbox), the national CRSs its users work in, its **imagery sources** (Sentinel-2 from any
provider preset, Theia, Level-1C, or single-band products) and its **local layers** (parcels,
communes, planning zones… with their role).  Everything territory-dependent — collections,
WMS layers, records, ISO records, the dashboard's list — is derived from these blocks
(:mod:`sentinelle.territories.resources`), so adding a territory touches one block::

    territories:
      bretagne:
        title: {fr: Bretagne (est de Rennes), en: Brittany (east of Rennes)}
        area: {file: ${SENTINELLE_DATA}/vectors/areas.geojson, filter: "area = 'bretagne'"}
        crs: [EPSG:2154, EPSG:4258, EPSG:3035]
        imagery:
          s2: {catalog: ${SENTINELLE_CATALOG}, preset: earth-search, max_cloud: 20,
               coverages: [NDVI], products: {classification: {datetime: 2024-06-11}}}
        layers:
          parcels: {role: parcels, data: ${SENTINELLE_DATA}/vectors/bretagne-parcels.gpkg,
                    id_field: id, storage_crs: EPSG:2154, title: {fr: …, en: …}}

Parsing errors are :class:`TerritoryError` (a ``ValueError``) naming the key to fix, e.g.
``territories.bretagne.imagery.s2.mask: unknown type 'cloud'``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from sentinelle.analysis.indices import INDICES
from sentinelle.analysis.render import RAMPS
from sentinelle.catalog.area import parse_crs, validate_bbox
from sentinelle.catalog.composite import METHODS
from sentinelle.catalog.masks import parse_mask
from sentinelle.catalog.presets import KINDS, PRESETS, with_assets
from sentinelle.catalog.source import Catalog, open_catalog

#: ids of territories, sources and layers: they become collection ids and WMS layer names
ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
#: roles a local layer may play (the dashboard and the processes look layers up by role)
ROLES = ("parcels", "agricultural-parcels", "communes", "planning-zones", "land-cover",
         "other")
LANGUAGES = ("fr", "en")
GRIDS = ("default", "native")
#: CRSs every territory offers besides its own (WMS and Features)
COMMON_CRS = ("EPSG:4326", "EPSG:3857")


class TerritoryError(ValueError):
    """A territory block is wrong; the message names the key and says what to write."""


def text(value: Any, where: str, *, default: str | None = None) -> Mapping[str, str]:
    """``{fr, en}`` from a mapping or a plain string (used for both languages)."""
    if value is None:
        if default is None:
            raise TerritoryError(f"{where}: required (a text, or {{fr: …, en: …}})")
        value = default
    if isinstance(value, str):
        return MappingProxyType({"fr": value, "en": value})
    if isinstance(value, Mapping) and value.get("fr"):
        return MappingProxyType({"fr": str(value["fr"]), "en": str(value.get("en") or
                                                                    value["fr"])})
    raise TerritoryError(f"{where}: a text, or {{fr: …, en: …}} with at least fr")


def _keywords(value: Any, where: str) -> Mapping[str, tuple[str, ...]]:
    if value is None:
        return MappingProxyType({"fr": (), "en": ()})
    if isinstance(value, list):
        return MappingProxyType({"fr": tuple(map(str, value)), "en": tuple(map(str, value))})
    if isinstance(value, Mapping):
        return MappingProxyType({lang: tuple(map(str, value.get(lang) or value.get("fr") or []))
                                 for lang in LANGUAGES})
    raise TerritoryError(f"{where}: a list of words, or {{fr: [...], en: [...]}}")


def _check_keys(block: Mapping, allowed: set[str], where: str) -> None:
    unknown = set(block) - allowed
    if unknown:
        raise TerritoryError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                             f"known: {', '.join(sorted(allowed))}")


def _id(value: Any, where: str) -> str:
    name = str(value)
    if not ID.match(name):
        raise TerritoryError(f"{where}: {name!r} is not a valid id (lower-case letters, digits "
                             "and dashes, 40 characters at most)")
    return name


def _number(block: Mapping, key: str, default: float, where: str, *, low: float = 0,
            high: float = float("inf")) -> float:
    value = block.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TerritoryError(f"{where}.{key}: a number, got {value!r}") from None
    if not low <= number <= high:
        raise TerritoryError(f"{where}.{key}: between {low:g} and {high:g}, got {number:g}")
    return number


# --- the area ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AreaSpec:
    """Where a territory is: one of ``file`` (+ ``layer``, ``filter``), ``collection``
    (+ ``filter``: a served feature collection, e.g. the territory's own communes) or
    ``bbox`` (+ ``crs``)."""

    file: str | None = None
    layer: str | None = None
    collection: str | None = None
    filter: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    crs: str = "OGC:CRS84"

    @classmethod
    def parse(cls, value: Any, where: str) -> AreaSpec:
        if isinstance(value, (list, tuple)):
            value = {"bbox": value}
        if not isinstance(value, Mapping):
            raise TerritoryError(f"{where}: give {{file: …}}, {{collection: …, filter: …}} or "
                                 "{bbox: [minx, miny, maxx, maxy]}")
        _check_keys(value, {"file", "layer", "collection", "filter", "bbox", "crs"}, where)
        given = [k for k in ("file", "collection", "bbox") if value.get(k)]
        if len(given) != 1:
            raise TerritoryError(f"{where}: give exactly one of file, collection or bbox")
        crs = str(value.get("crs") or "OGC:CRS84")
        try:
            parse_crs(crs)
            bbox = tuple(validate_bbox(value["bbox"], parse_crs(crs))) if value.get("bbox") \
                else None
        except ValueError as err:
            raise TerritoryError(f"{where}: {err}") from None
        if value.get("filter") is not None and not isinstance(value["filter"], str):
            raise TerritoryError(f"{where}.filter: a CQL2 text filter such as \"code LIKE "
                                 "'35%'\"")
        return cls(file=value.get("file"), layer=value.get("layer"),
                   collection=value.get("collection"), filter=value.get("filter"),
                   bbox=bbox, crs=crs)


# --- imagery sources ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ProductInfo:
    """What a single-band product's values mean: how the coverage names its field, how a map
    colours it (a ramp stretched to ``range``) and its unit."""

    name: str
    title: Mapping[str, str]
    unit: str
    range: tuple[float, float]
    ramp: str
    description: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, source_id: str, where: str) -> ProductInfo:
        value = value or {}
        if not isinstance(value, Mapping):
            raise TerritoryError(f"{where}: a mapping (name, title, unit, range, ramp)")
        _check_keys(value, {"name", "title", "description", "unit", "range", "ramp"}, where)
        name = str(value.get("name") or source_id).lower()
        if not re.match(r"^[a-z][a-z0-9_-]{0,39}$", name):
            raise TerritoryError(f"{where}.name: {name!r} is not a field name")
        span = value.get("range", [0, 1])
        try:
            low, high = (float(v) for v in span)
        except (TypeError, ValueError):
            raise TerritoryError(f"{where}.range: [min, max], got {span!r}") from None
        if not low < high:
            raise TerritoryError(f"{where}.range: min must be below max")
        ramp = str(value.get("ramp") or "viridis")
        if ramp not in RAMPS:
            raise TerritoryError(f"{where}.ramp: {ramp!r} is not one of "
                                 f"{', '.join(sorted(RAMPS))}")
        return cls(name=name, title=text(value.get("title"), f"{where}.title", default=name),
                   unit=str(value.get("unit", "1")), range=(low, high), ramp=ramp,
                   description=text(value.get("description"), f"{where}.description",
                                    default=""))


@dataclass(frozen=True)
class ImagerySource:
    """One imagery source of a territory: where its scenes are and how to read them."""

    id: str
    territory: str
    kind: str  # "optical" | "product"
    catalog: str  # a folder (static STAC catalog, Theia products) or a STAC API URL
    preset: str
    collections: tuple[str, ...]
    assets: Mapping[str, Any] | None
    mask: Any
    max_cloud: float
    composite: str
    resolution: float
    grid: str
    indices: tuple[str, ...]  # index coverages and maps served as <territory>-<index>
    derived: Mapping[str, Mapping[str, Any]]  # WMS presets: classification, change
    title: Mapping[str, str] | None = None
    description: Mapping[str, str] | None = None
    product: ProductInfo | None = None

    @property
    def collection_id(self) -> str:
        """The OGC API collection of this source (``bretagne-s2``, ``meuse-ndvi-series``)."""
        return f"{self.territory}-{self.id}"

    def index_collection_id(self, index: str) -> str:
        return f"{self.territory}-{index.lower()}"

    def open(self) -> Catalog:
        """The catalog (opened once and cached by the catalog layer)."""
        options: dict[str, Any] = {}
        if self.assets:
            options["assets"] = dict(self.assets)
        if self.mask is not None:
            options["mask"] = self.mask
        if self.collections:
            options["collections"] = list(self.collections)
        return open_catalog(self.catalog, self.preset, **options)

    @property
    def options(self) -> dict[str, Any]:
        """What a provider or a process needs to open this source (plain data)."""
        return {"territory": self.territory, "source": self.id}


def _source(territory: str, source_id: str, block: Any, where: str) -> ImagerySource:
    if not isinstance(block, Mapping):
        raise TerritoryError(f"{where}: a mapping with at least 'catalog'")
    _check_keys(block, {"catalog", "preset", "collections", "assets", "mask", "max_cloud",
                        "composite", "resolution", "grid", "coverages", "products", "kind",
                        "title", "description", "product"}, where)
    if not block.get("catalog"):
        raise TerritoryError(f"{where}.catalog: a folder (static STAC catalog or Theia "
                             "products) or a STAC API URL")
    preset = str(block.get("preset", "auto"))
    if preset != "auto" and preset not in PRESETS:
        raise TerritoryError(f"{where}.preset: {preset!r} is not one of auto, "
                             f"{', '.join(sorted(PRESETS))}")
    kind = str(block.get("kind") or (PRESETS[preset].kind if preset in PRESETS else
                                     "product" if block.get("product") else "optical"))
    if kind not in KINDS:
        raise TerritoryError(f"{where}.kind: one of {', '.join(KINDS)}")
    try:
        base = PRESETS.get(preset if preset != "auto" else
                           ("product" if kind == "product" else "earth-search"))
        with_assets(base, block.get("assets"))
        mask = block.get("mask")
        parse_mask(mask, base.mask)
    except ValueError as err:
        raise TerritoryError(f"{where}: {err}") from None
    composite = str(block.get("composite", "median"))
    if composite not in METHODS:
        raise TerritoryError(f"{where}.composite: one of {', '.join(METHODS)}")
    grid = str(block.get("grid", "native" if kind == "product" else "default"))
    if grid not in GRIDS:
        raise TerritoryError(f"{where}.grid: one of {', '.join(GRIDS)}")
    indices = block.get("coverages", ["NDVI"] if kind == "optical" else [])
    if not isinstance(indices, list) or any(str(i).upper() not in INDICES for i in indices):
        raise TerritoryError(f"{where}.coverages: a list of indices among "
                             f"{', '.join(INDICES)}")
    derived = block.get("products") or {}
    if not isinstance(derived, Mapping) or set(derived) - {"classification", "change"}:
        raise TerritoryError(f"{where}.products: classification and/or change presets")
    collections = block.get("collections") or []
    if isinstance(collections, str):
        collections = [collections]
    return ImagerySource(
        id=_id(source_id, where), territory=territory, kind=kind,
        catalog=str(block["catalog"]), preset=preset,
        collections=tuple(map(str, collections)),
        assets=MappingProxyType(dict(block["assets"])) if block.get("assets") else None,
        mask=mask,
        max_cloud=_number(block, "max_cloud", 20.0, where, high=100),
        composite=composite,
        resolution=_number(block, "resolution", 10.0, where, low=1e-9, high=100_000),
        grid=grid,
        indices=tuple(str(i).upper() for i in indices) if kind == "optical" else (),
        derived=MappingProxyType({k: dict(v or {}) for k, v in derived.items()}),
        title=text(block["title"], f"{where}.title") if block.get("title") else None,
        description=text(block["description"], f"{where}.description")
        if block.get("description") else None,
        product=ProductInfo.parse(block.get("product"), source_id, f"{where}.product")
        if kind == "product" else None,
    )


# --- local layers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldInfo:
    """How a property is shown to people: an alias and a unit (``Surface (m²)``)."""

    title: Mapping[str, str]
    unit: str | None = None


@dataclass(frozen=True)
class LocalLayer:
    """A vector layer of the territory's SDI, served as an OGC API Features collection."""

    id: str
    territory: str
    role: str
    title: Mapping[str, str]
    description: Mapping[str, str]
    keywords: Mapping[str, tuple[str, ...]]
    provider: Mapping[str, Any]  # the pygeoapi provider definition (type feature)
    storage_crs: str
    fields: Mapping[str, FieldInfo]

    @property
    def collection_id(self) -> str:
        return f"{self.territory}-{self.id}"


#: provider short names → pygeoapi provider classes
VECTOR_PROVIDERS = {"gpkg": "sentinelle.providers.features.GeoPackageProvider"}


def _layer(territory: str, layer_id: str, block: Any, where: str) -> LocalLayer:
    if not isinstance(block, Mapping):
        raise TerritoryError(f"{where}: a mapping with at least 'data'")
    _check_keys(block, {"role", "title", "description", "keywords", "data", "layer",
                        "provider", "id_field", "title_field", "storage_crs", "fields",
                        "options"}, where)
    if not block.get("data"):
        raise TerritoryError(f"{where}.data: where the layer lives (a GeoPackage path…)")
    role = str(block.get("role", "other"))
    if role not in ROLES:
        raise TerritoryError(f"{where}.role: one of {', '.join(ROLES)}")
    storage_crs = str(block.get("storage_crs") or "OGC:CRS84")
    try:
        parse_crs(storage_crs)
    except ValueError as err:
        raise TerritoryError(f"{where}.storage_crs: {err}") from None
    kind = str(block.get("provider", "gpkg"))
    name = VECTOR_PROVIDERS.get(kind, kind)
    if "." not in name:
        raise TerritoryError(f"{where}.provider: {', '.join(VECTOR_PROVIDERS)} or a pygeoapi "
                             "provider class (dotted path)")
    options = dict(block.get("options") or {})
    options.setdefault("layer", str(block.get("layer") or f"{territory}-{layer_id}"))
    provider = {"type": "feature", "name": name, "data": str(block["data"]),
                "id_field": str(block.get("id_field", "id")), "options": options}
    if block.get("title_field"):
        provider["title_field"] = str(block["title_field"])
    fields = {}
    for fname, info in (block.get("fields") or {}).items():
        if isinstance(info, str) or (isinstance(info, Mapping) and "title" not in info
                                     and "fr" in info):
            info = {"title": info}
        if not isinstance(info, Mapping):
            raise TerritoryError(f"{where}.fields.{fname}: a title, or {{title, unit}}")
        fields[str(fname)] = FieldInfo(text(info.get("title"), f"{where}.fields.{fname}.title",
                                            default=str(fname)),
                                       str(info["unit"]) if info.get("unit") else None)
    return LocalLayer(
        id=_id(layer_id, where), territory=territory, role=role,
        title=text(block.get("title"), f"{where}.title", default=layer_id),
        description=text(block.get("description"), f"{where}.description", default=""),
        keywords=_keywords(block.get("keywords"), f"{where}.keywords"),
        provider=MappingProxyType(provider), storage_crs=storage_crs,
        fields=MappingProxyType(fields))


# --- territories -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Territory:
    """One territory block (see the module docstring)."""

    id: str
    title: Mapping[str, str]
    description: Mapping[str, str]
    keywords: Mapping[str, tuple[str, ...]]
    area: AreaSpec
    crs: tuple[str, ...]  # national / INSPIRE CRSs its users work in
    imagery: tuple[ImagerySource, ...]
    layers: tuple[LocalLayer, ...]

    @property
    def optical(self) -> ImagerySource | None:
        """The territory's main Sentinel-2 source (the first optical one)."""
        return next((s for s in self.imagery if s.kind == "optical"), None)

    def source(self, source_id: str) -> ImagerySource:
        for source in self.imagery:
            if source.id == source_id:
                return source
        raise KeyError(source_id)

    def layer(self, role: str) -> LocalLayer | None:
        """The first local layer playing ``role`` (``communes``, ``parcels``…)."""
        return next((layer for layer in self.layers if layer.role == role), None)

    @property
    def all_crs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*COMMON_CRS, *self.crs)))


def parse_territory(territory_id: Any, block: Any) -> Territory:
    where = f"territories.{territory_id}"
    tid = _id(territory_id, where)
    if not isinstance(block, Mapping):
        raise TerritoryError(f"{where}: a mapping with title, area, imagery and layers")
    _check_keys(block, {"title", "description", "keywords", "area", "crs", "imagery",
                        "layers"}, where)
    if "area" not in block:
        raise TerritoryError(f"{where}.area: required ({{file: …}}, {{collection: …, filter: "
                             "…}} or {bbox: […]})")
    crs = block.get("crs") or []
    if isinstance(crs, str):
        crs = [crs]
    for value in crs:
        try:
            parse_crs(value)
        except ValueError as err:
            raise TerritoryError(f"{where}.crs: {err}") from None
    imagery = block.get("imagery") or {}
    layers = block.get("layers") or {}
    if not isinstance(imagery, Mapping) or not isinstance(layers, Mapping):
        raise TerritoryError(f"{where}: imagery and layers are mappings of id → block")
    sources = tuple(_source(tid, sid, sblock, f"{where}.imagery.{sid}")
                    for sid, sblock in imagery.items())
    local = tuple(_layer(tid, lid, lblock, f"{where}.layers.{lid}")
                  for lid, lblock in layers.items())
    ids = [s.collection_id for s in sources] + [ly.collection_id for ly in local] + [
        s.index_collection_id(i) for s in sources for i in s.indices]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TerritoryError(f"{where}: collection id(s) {', '.join(duplicates)} would be "
                             "generated twice; rename the source or layer")
    return Territory(
        id=tid, title=text(block.get("title"), f"{where}.title", default=tid),
        description=text(block.get("description"), f"{where}.description", default=""),
        keywords=_keywords(block.get("keywords"), f"{where}.keywords"),
        area=AreaSpec.parse(block["area"], f"{where}.area"),
        crs=tuple(str(c) for c in crs), imagery=sources, layers=local)


def parse_territories(config: Mapping[str, Any]) -> tuple[Territory, ...]:
    """Every territory block of a (pygeoapi) configuration, in order."""
    blocks = config.get("territories") or {}
    if not isinstance(blocks, Mapping):
        raise TerritoryError("territories: a mapping of territory id → block")
    return tuple(parse_territory(tid, block) for tid, block in blocks.items())
