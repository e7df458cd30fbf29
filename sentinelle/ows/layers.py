"""The layer model of the OGC web services (WMS, and the WMTS built on it), derived from the
territories (:mod:`sentinelle.territories`).

Per territory, a layer group: its optical source gives one true-colour layer
(``<territory>:OI.OrthoimageCoverage``, INSPIRE's orthoimagery layer name), one layer per
spectral index of the registry its scenes allow (``<territory>:NDVI``…; NBR needs ``swir22``)
and the derived products its ``products:`` block declares as presets — a rules land-cover
classification (``<territory>:LC.LandCoverRaster``, INSPIRE's land-cover layer name) and an
index change between two periods (``<territory>:NDVI-change``)::

    imagery:
      s2:
        products:
          classification: {datetime: 2024-10-21}        # default TIME (date or interval)
          change: {index: NDVI, before: 2024-07-01/2024-07-31, after: 2024-08-01/2024-08-31,
                   threshold: 0.2, min_area_ha: 0.5}    # TIME picks the "after" period

Each product source gives one layer (``<territory>:<source>``) drawn through its ramp.  Layers
use the same catalog, cloud mask, cloud threshold and composite method as OGC API
Coverages/Maps, and the product records list the same products.

Dates and the default date (latest at most ``max_cloud`` % cloudy over the whole area) cost a
read of the cloud mask per scene; they are cached per catalog object (re-read when the
catalog changes, as :func:`sentinelle.catalog.source.open_catalog` does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from sentinelle.analysis.change import DEFAULT_THRESHOLDS, METHODS
from sentinelle.analysis.classify import RULES
from sentinelle.analysis.indices import INDICES, get_index
from sentinelle.catalog.area import Area
from sentinelle.catalog.dates import parse_interval
from sentinelle.catalog.search import search
from sentinelle.catalog.source import Catalog
from sentinelle.errors import SentinelleError
from sentinelle.rendering import INDEX_RAMPS
from sentinelle.settings import Limits
from sentinelle.territories import ImagerySource, ProductInfo, Registry, load_config, registry

LOGGER = logging.getLogger(__name__)
TRUE_COLOR = "OI.OrthoimageCoverage"
TRUE_COLOR_STYLE = "true-color"
LAND_COVER = "LC.LandCoverRaster"
LAND_COVER_STYLE = "land-cover"
CHANGE_STYLE = "change"
#: bands the rules classification reads (NDVI, NDWI, NDMI)
CLASSIFICATION_BANDS = ("green", "red", "nir", "swir16")
#: the OGC API process that computes each kind of product (None: served as read)
PRODUCT_PROCESSES = {"true-color": None, "index": "spectral-index",
                     "classification": "classification", "change": "change-detection",
                     "product": None}
#: legend image size (px) of the index and true-colour layers
LEGEND_SIZE = (300, 64)
#: CRSs offered everywhere (WMS 1.3.0 axis order is handled by :mod:`wms_params`).
COMMON_CRS = ("CRS:84", "EPSG:4326", "EPSG:3857")


@dataclass(frozen=True)
class AreaSource:
    """One imagery source of a territory, as the WMS serves it (a layer group per
    territory: its optical source's true colour, indices and derived products, and one layer
    per product source)."""

    name: str  # the territory id
    spec: ImagerySource = field(compare=False)
    title: Mapping[str, str] = field(compare=False)
    crs_list: tuple[str, ...] = ()
    registry: Registry | None = field(default=None, compare=False, repr=False)

    @property
    def catalog(self) -> Catalog:
        return self.spec.open()

    @property
    def area(self) -> Area:
        return self.registry.area(self.name)

    @property
    def composite(self) -> str:
        return self.spec.composite

    @property
    def max_cloud(self) -> float:
        return self.spec.max_cloud

    @property
    def product(self) -> ProductInfo | None:
        return self.spec.product

    @property
    def collections(self) -> tuple[str, ...]:
        """The pygeoapi collections of this source (bands or values, then its indices)."""
        return (self.spec.collection_id,
                *(self.spec.index_collection_id(i) for i in self.spec.indices))


@dataclass(frozen=True)
class TimeInfo:
    dates: tuple[str, ...]
    default: str | None
    native_epsg: int | None
    bands: frozenset[str]
    clear: tuple[str, ...] = ()  # dates at most max_cloud % cloudy over the area


@dataclass(frozen=True)
class Preset:
    """A derived product of an area, as configured: a rules classification (``datetime``:
    its default date or interval) or an index change (``before`` fixed, ``after`` the default
    of TIME; ``method``, ``threshold`` and ``min_area_ha`` as the change-detection process
    takes them)."""

    kind: str  # "classification" | "change"
    datetime: str | None = None
    index: str = "NDVI"
    before: str | None = None
    after: str | None = None
    method: str = "difference"
    threshold: float | None = None
    min_area_ha: float = 0.5

    @property
    def effective_threshold(self) -> float:
        return float(self.threshold if self.threshold is not None
                     else DEFAULT_THRESHOLDS[self.method])

    @property
    def bands(self) -> tuple[str, ...]:
        return CLASSIFICATION_BANDS if self.kind == "classification" \
            else get_index(self.index).bands


@dataclass(frozen=True)
class Layer:
    """A named WMS layer: an area and a product (``index`` None = true colour; ``preset``
    set = a derived product, classification or change)."""

    source: AreaSource
    index: str | None
    time: TimeInfo = field(compare=False)
    preset: Preset | None = None

    @property
    def kind(self) -> str:
        """``true-color``, ``index``, ``classification``, ``change`` or ``product``."""
        if self.preset is not None:
            return self.preset.kind
        if self.source.product is not None:
            return "product"
        return "index" if self.index else "true-color"

    @property
    def name(self) -> str:
        if self.kind == "product":
            return f"{self.source.name}:{self.source.spec.id}"
        if self.kind == "classification":
            return f"{self.source.name}:{LAND_COVER}"
        if self.kind == "change":
            return f"{self.source.name}:{self.preset.index}-change"
        return f"{self.source.name}:{self.index or TRUE_COLOR}"

    @property
    def product_id(self) -> str:
        """The id of the product's metadata record (``bretagne-s2``, ``bretagne-ndvi``,
        ``bretagne-landcover``, ``bretagne-ndvi-change``…), the same as the OGC API
        collection when there is one."""
        if self.kind == "product":
            return self.source.spec.collection_id
        if self.kind == "classification":
            return f"{self.source.name}-landcover"
        if self.kind == "change":
            return f"{self.source.name}-{self.preset.index.lower()}-change"
        return f"{self.source.name}-{(self.index or 's2').lower()}"

    @property
    def style(self) -> str:
        if self.kind == "product":
            return self.source.product.ramp
        if self.kind == "classification":
            return LAND_COVER_STYLE
        if self.kind == "change":
            return CHANGE_STYLE
        return self.index.lower() if self.index else TRUE_COLOR_STYLE

    @property
    def ramp(self) -> str | None:
        if self.kind == "product":
            return self.source.product.ramp
        return INDEX_RAMPS.get(self.index, "ndvi") if self.index else None

    @property
    def legend_size(self) -> tuple[int, int]:
        """Width and height (px) of the layer's GetLegendGraphic image."""
        if self.kind == "classification":
            from sentinelle.analysis.classify import RULES_LEGEND

            return 300, 28 + 20 * len(RULES_LEGEND.names)
        if self.kind == "change":
            return 300, 28 + 20 * 3
        return LEGEND_SIZE

    def style_title(self, lang: str) -> str:
        if self.kind == "product":
            low, high = self.source.product.range
            return (f"Palette « {self.ramp} » de {_num(low, lang)} à {_num(high, lang)}"
                    if lang == "fr" else f"{self.ramp} colour ramp from {low:g} to {high:g}")
        if self.kind == "classification":
            return ("Classes d'occupation du sol (règles)" if lang == "fr"
                    else "Land-cover classes (rules)")
        if self.kind == "change":
            return ("Perte en rouge, gain en vert, stable transparent" if lang == "fr"
                    else "Loss red, gain green, stable transparent")
        if self.index:
            return (f"{self.index} — palette « {self.ramp} »" if lang == "fr"
                    else f"{self.index} — {self.ramp} colour ramp")
        return "Couleurs naturelles" if lang == "fr" else "True colour"

    @property
    def crs(self) -> tuple[str, ...]:
        native = (f"EPSG:{self.time.native_epsg}",) if self.time.native_epsg else ()
        return tuple(dict.fromkeys(COMMON_CRS + self.source.crs_list + native))

    def title(self, lang: str) -> str:
        area = self.source.title[lang]
        if self.preset is not None:
            return _derived_title(self, lang)
        if self.kind == "product":
            return self.source.spec.title[lang] if self.source.spec.title else \
                f"{self.source.product.title[lang]} — {area}"
        if self.index is None:
            return (f"Orthoimagerie Sentinel-2 en couleurs naturelles — {area}" if lang == "fr"
                    else f"Sentinel-2 orthoimagery, true colour — {area}")
        spec = get_index(self.index)
        return f"{spec.name} — {spec.title[lang]} — {area}"

    def abstract(self, lang: str) -> str:
        if self.preset is not None:
            return _derived_abstract(self, lang)
        if self.kind == "product":
            return _product_abstract(self, lang)
        area = self.source.title[lang]
        cloud = f"{self.source.max_cloud:g}"
        if lang == "fr":
            what = ("Image Copernicus Sentinel-2 niveau 2A en couleurs naturelles (rouge B04, "
                    "vert B03, bleu B02, réflectance étirée de 0 à 0,25)"
                    if self.index is None else
                    f"{get_index(self.index).title['fr']} ({self.index} = "
                    f"{get_index(self.index).formula}), calculé à la demande depuis "
                    "Copernicus Sentinel-2 niveau 2A")
            return (f"{what} sur {area}, 10 m, nuages, ombres et cirrus masqués (SCL, "
                    "transparents). TIME : une date de la dimension temporelle, ou un "
                    f"intervalle début/fin pour une composition {self.source.composite} "
                    f"sans nuages ; sans TIME, la dernière date à {cloud} % de nuages au plus "
                    "sur la zone.")
        what = ("Copernicus Sentinel-2 Level-2A true-colour image (red B04, green B03, blue "
                "B02, reflectance stretched from 0 to 0.25)" if self.index is None else
                f"{get_index(self.index).title['en']} ({self.index} = "
                f"{get_index(self.index).formula}) computed on demand from Copernicus "
                "Sentinel-2 Level-2A")
        return (f"{what} over {area}, 10 m, clouds, shadows and cirrus masked (SCL, "
                "transparent). TIME: one date of the time dimension, or a start/end interval "
                f"for a cloud-free {self.source.composite} composite; without TIME, the latest "
                f"date at most {cloud} % cloudy over the area.")

    @property
    def process(self) -> str | None:
        """The OGC API process that computes this product for any area (None: the pixels
        are served as they are)."""
        return PRODUCT_PROCESSES[self.kind]

    def lineage(self, lang: str) -> str:
        """How the product is made (ISO lineage statement)."""
        composite = self.source.composite
        if self.kind == "product":
            return (f"Produit publié tel quel depuis la source {self.source.spec.id} du "
                    f"territoire ; composition {composite} pour un intervalle de dates."
                    if lang == "fr" else
                    f"Product served as published by the territory's source "
                    f"{self.source.spec.id}; {composite} composite for a date interval.")
        if self.kind == "classification":
            if lang == "fr":
                return ("Calculé à la demande depuis les scènes Copernicus Sentinel-2 L2A du "
                        "catalogue : classes d'occupation du sol par des règles sur NDVI, NDWI "
                        "et NDMI (traitement classification, méthode rules), nuages masqués "
                        f"avec la bande SCL ; date par défaut {self.time.default}, composition "
                        f"{composite} pour un intervalle de dates.")
            return ("Computed on demand from the catalog's Copernicus Sentinel-2 L2A scenes: "
                    "land-cover classes by rules on NDVI, NDWI and NDMI (classification "
                    "process, rules method), clouds masked with the SCL band; default date "
                    f"{self.time.default}, {composite} composite for a date interval.")
        if self.kind == "change":
            p = self.preset
            if lang == "fr":
                return (f"Calculé à la demande depuis les scènes Copernicus Sentinel-2 L2A du "
                        f"catalogue : {p.index} après − {p.index} avant (méthode {p.method}, "
                        f"seuil ±{_num(p.effective_threshold, lang)}, taches de moins de "
                        f"{_num(p.min_area_ha, lang)} ha ignorées ; traitement "
                        f"change-detection), avant = {p.before}, après = la date ou la période "
                        f"demandée (par défaut {self.time.default}), nuages masqués avec la "
                        f"bande SCL, composition {composite} d'une période.")
            return (f"Computed on demand from the catalog's Copernicus Sentinel-2 L2A scenes: "
                    f"{p.index} after − {p.index} before ({p.method} method, threshold "
                    f"±{_num(p.effective_threshold, lang)}, patches under "
                    f"{_num(p.min_area_ha, lang)} ha dropped; change-detection process), "
                    f"before = {p.before}, after = the requested date or period (default "
                    f"{self.time.default}), clouds masked with the SCL band, {composite} "
                    "composite of a period.")
        what = (f"{self.index} = {get_index(self.index).formula}" if self.index
                else "rouge/vert/bleu (B04, B03, B02)")
        if lang == "fr":
            return (f"Calculé à la demande depuis les scènes Copernicus Sentinel-2 L2A du "
                    f"catalogue ({what}), nuages masqués avec la bande SCL ; composition "
                    f"{composite} pour un intervalle de dates.")
        return (f"Computed on demand from the catalog's Copernicus Sentinel-2 L2A scenes "
                f"({what}), clouds masked with the SCL band; {composite} composite for a "
                "date interval.")

    def keywords(self, lang: str) -> list[str]:
        area = self.source.title[lang].split(" (")[0]
        if self.kind == "product":
            return [area, self.source.product.name,
                    "produit à valeur ajoutée" if lang == "fr" else "value-added product"]
        common = ["Copernicus", "Sentinel-2", area]
        if self.kind == "classification":
            return common + (["Occupation des terres", "occupation du sol", "classification"]
                             if lang == "fr" else ["Land cover", "classification"])
        if self.kind == "change":
            return common + [self.preset.index] + (
                ["détection de changements", "déforestation", "artificialisation"]
                if lang == "fr" else ["change detection", "deforestation", "land take"])
        if self.index is None:
            return common + (["Orthoimagerie", "couleurs naturelles"] if lang == "fr"
                             else ["Orthoimagery", "true colour"])
        return common + [self.index] + (["indice spectral"] if lang == "fr"
                                        else ["spectral index"])


def _num(value: float, lang: str) -> str:
    text = f"{value:g}"
    return text.replace(".", ",") if lang == "fr" else text


def _product_abstract(layer: "Layer", lang: str) -> str:
    product, area = layer.source.product, layer.source.title[lang]
    described = layer.source.spec.description or (product.description
                                                  if product.description.get("fr") else None)
    low, high = product.range
    what = described[lang] if described else product.title[lang]
    if lang == "fr":
        return (f"{what} — {area}. Valeurs de {_num(low, lang)} à {_num(high, lang)} "
                f"({product.unit}), palette « {product.ramp} ». TIME : une date, ou un "
                f"intervalle pour une composition {layer.source.composite}.")
    return (f"{what} — {area}. Values from {low:g} to {high:g} ({product.unit}), "
            f"{product.ramp} colour ramp. TIME: one date, or an interval for a "
            f"{layer.source.composite} composite.")


def _derived_title(layer: "Layer", lang: str) -> str:
    area = layer.source.title[lang]
    if layer.kind == "classification":
        return (f"Occupation du sol Sentinel-2 (classification par règles) — {area}"
                if lang == "fr" else f"Sentinel-2 land cover (rules classification) — {area}")
    index = layer.preset.index
    return (f"Changements de {index} (pertes et gains) — {area}" if lang == "fr"
            else f"{index} change (losses and gains) — {area}")


def _derived_abstract(layer: "Layer", lang: str) -> str:
    preset, area, composite = layer.preset, layer.source.title[lang], layer.source.composite
    default = layer.time.default or "?"
    if layer.kind == "classification":
        t = {k: _num(v, lang) for k, v in RULES.items()}
        if lang == "fr":
            return (f"Classes d'occupation du sol sur {area}, calculées à la demande depuis "
                    "Copernicus Sentinel-2 niveau 2A par des règles sur les indices (la "
                    f"première qui s'applique) : eau NDWI > {t['water_ndwi']} ; arbres NDVI ≥ "
                    f"{t['tree_ndvi']} et NDMI ≥ {t['tree_ndmi']} ; sol nu / bâti NDVI < "
                    f"{t['bare_ndvi']} ; végétation clairsemée NDVI < {t['sparse_ndvi']} ; "
                    "sinon prairie / culture. 10 m, nuages masqués (SCL, transparents). "
                    "Pensé pour une date claire d'été. TIME : une date, ou un intervalle "
                    f"pour une composition {composite} ; sans TIME, le {default}. "
                    "GetFeatureInfo donne le code et le nom de la classe.")
        return (f"Land-cover classes over {area}, computed on demand from Copernicus "
                "Sentinel-2 Level-2A by rules on spectral indices (first match wins): water "
                f"NDWI > {t['water_ndwi']}; trees NDVI ≥ {t['tree_ndvi']} and NDMI ≥ "
                f"{t['tree_ndmi']}; bare soil / built-up NDVI < {t['bare_ndvi']}; sparse "
                f"vegetation NDVI < {t['sparse_ndvi']}; else grassland / crop. 10 m, clouds "
                "masked (SCL, transparent). Meant for a clear summer date. TIME: one date, "
                f"or an interval for a {composite} composite; without TIME, {default}. "
                "GetFeatureInfo gives the class code and name.")
    threshold = _num(preset.effective_threshold, lang)
    area_ha = _num(preset.min_area_ha, lang)
    relative = preset.method == "relative"
    if lang == "fr":
        rule = (f"variation relative (après − avant) / |avant| au-delà de ±{threshold}"
                if relative else f"différence après − avant au-delà de ±{threshold}")
        return (f"Perte (rouge) ou gain (vert) de {preset.index} sur {area} entre la période "
                f"de référence {preset.before} et la date ou la période TIME (par défaut "
                f"{default}) : {rule} ; taches de moins de {area_ha} ha ignorées ; stable et "
                "sans donnée transparents. Calculé à la demande depuis Copernicus Sentinel-2 "
                f"niveau 2A, nuages masqués (SCL), composition {composite} d'une période.")
    rule = (f"relative change (after − before) / |before| beyond ±{threshold}" if relative
            else f"difference after − before beyond ±{threshold}")
    return (f"{preset.index} loss (red) or gain (green) over {area} between the reference "
            f"period {preset.before} and the TIME date or period (default {default}): "
            f"{rule}; patches under {area_ha} ha dropped; stable and no data transparent. "
            "Computed on demand from Copernicus Sentinel-2 Level-2A, clouds masked (SCL), "
            f"{composite} composite of a period.")


@dataclass(frozen=True)
class PixelValue:
    """A layer's values at one 10 m pixel and what they come from (GetFeatureInfo)."""

    layer: str
    lon: float
    lat: float
    values: dict[str, float | None]
    dates: tuple[str, ...]
    scenes: tuple[str, ...]


def area_sources(config: dict) -> list[AreaSource]:
    """The imagery sources of the territories, in configuration order."""
    found = registry(config) if config is not None else registry()
    return [AreaSource(t.id, source, t.title, t.all_crs, found)
            for t in found.territories for source in t.imagery]


_TIME_CACHE: dict[tuple, tuple[float, TimeInfo]] = {}
_LOCK = threading.Lock()
#: A static catalog is a new object when its file changes; a STAC API is the same object for
#: good, so what it answered is kept this long (new scenes appear in the time dimension after).
TIME_TTL = 600.0  # s


def time_info(source: AreaSource) -> TimeInfo:
    """Dates with data over the area, the default (latest clear) date, native UTM zone and
    the bands the scenes carry (cached per catalog object, at most ``TIME_TTL`` seconds).
    Without a cloud mask every date counts as clear."""
    catalog = source.catalog
    key = (source.name, source.spec.id, id(catalog), source.max_cloud)
    with _LOCK:
        cached = _TIME_CACHE.get(key)
        if cached is not None and time.monotonic() - cached[0] < TIME_TTL:
            return cached[1]
    area = source.area
    matches = search(catalog, area, None, limits=Limits.from_env())
    dates = tuple(sorted({m.scene.date.isoformat() for m in matches}))
    clear = [m for m in matches
             if m.cloud_fraction is None or m.cloud_fraction * 100 <= source.max_cloud]
    default = clear[-1].scene.date.isoformat() if clear else None
    epsg = Counter(m.scene.epsg for m in matches).most_common(1)[0][0] if matches else None
    bands = frozenset.intersection(*(frozenset(m.scene.assets) for m in matches)) \
        if matches else frozenset()
    info = TimeInfo(dates, default, epsg, bands,
                    tuple(sorted({m.scene.date.isoformat() for m in clear})))
    with _LOCK:
        _TIME_CACHE[key] = (time.monotonic(), info)
    return info


def _preset(kind: str, entry: Any) -> Preset:
    """A preset from its configuration entry (``ValueError`` saying what is wrong)."""
    if not isinstance(entry, dict):
        raise ValueError(f"{kind}: expected a mapping, got {entry!r}")
    text = {k: (str(v) if v is not None else None) for k, v in entry.items()}
    if kind == "classification":
        unknown = set(entry) - {"datetime"}
        if unknown:
            raise ValueError(f"classification: unknown key(s) {', '.join(sorted(unknown))}")
        if text.get("datetime"):
            parse_interval(text["datetime"])
        return Preset("classification", datetime=text.get("datetime"))
    unknown = set(entry) - {"index", "before", "after", "method", "threshold", "min_area_ha"}
    if unknown:
        raise ValueError(f"change: unknown key(s) {', '.join(sorted(unknown))}")
    if not text.get("before") or not text.get("after"):
        raise ValueError("change: give both before and after (a date or an interval each)")
    before, after = parse_interval(text["before"]), parse_interval(text["after"])
    if before.end is None or after.start is None or before.end >= after.start:
        raise ValueError(f"change: before ({text['before']}) must end before after "
                         f"({text['after']}) starts")
    index = get_index(text.get("index") or "NDVI").name
    method = text.get("method") or "difference"
    if method not in METHODS:
        raise ValueError(f"change: method must be one of {', '.join(METHODS)}")
    threshold = float(entry["threshold"]) if entry.get("threshold") is not None else None
    if threshold is not None and not threshold > 0:
        raise ValueError("change: threshold must be positive")
    min_area = float(entry.get("min_area_ha", 0.5))
    if not min_area >= 0:
        raise ValueError("change: min_area_ha must be zero or positive")
    return Preset("change", index=index, before=text["before"], after=text["after"],
                  method=method, threshold=threshold, min_area_ha=min_area)


def source_presets(source: AreaSource) -> tuple[Preset, ...]:
    """The derived-product presets of an optical source (classification first, then change),
    from its ``products:`` block.  A wrong entry is logged and left out, so one typo does not
    take the WMS down."""
    kept = []
    for kind in ("classification", "change"):
        if kind not in source.spec.derived:
            continue
        try:
            kept.append(_preset(kind, source.spec.derived[kind]))
        except (ValueError, TypeError, SentinelleError) as err:
            LOGGER.warning("products preset %s/%s ignored: %s", source.name, kind, err)
    return tuple(kept)


def _in(text: str, dates: tuple[str, ...]) -> list[str]:
    interval = parse_interval(text)
    low = interval.start.date().isoformat() if interval.start else "0000"
    high = interval.end.date().isoformat() if interval.end else "9999"
    return [d for d in dates if low <= d <= high]


def derived_time(preset: Preset, info: TimeInfo) -> TimeInfo | None:
    """The time dimension of a derived layer, or None when the data cannot make it.

    Classification: every date; default the latest clear date of the preset's ``datetime``
    (else its latest date, else the area's default).  Change: the dates after the ``before``
    period (TIME chooses the "after" date or period); default the latest clear date of the
    preset's ``after`` (else its latest date); None when ``before`` holds no date or nothing
    comes after it."""
    if preset.kind == "classification":
        chosen = _in(preset.datetime, info.dates) if preset.datetime else []
        clear = [d for d in chosen if d in info.clear]
        default = (clear or chosen or [info.default])[-1]
        return TimeInfo(info.dates, default, info.native_epsg, info.bands, info.clear)
    before = parse_interval(preset.before)
    if not _in(preset.before, info.dates):
        return None
    end = before.end.date().isoformat()
    dates = tuple(d for d in info.dates if d > end)
    if not dates:
        return None
    chosen = _in(preset.after, dates)
    clear = [d for d in chosen if d in info.clear]
    default = (clear or chosen or [d for d in dates if d in info.clear] or list(dates))[-1]
    return TimeInfo(dates, default, info.native_epsg, info.bands,
                    tuple(d for d in info.clear if d in dates))


def layers(config: dict | None = None) -> list[Layer]:
    """Every WMS layer, grouped by territory (true colour first, then the registry's indices,
    then the derived products of the source's presets, then the product sources)."""
    config = config if config is not None else load_config()
    result = []
    for source in area_sources(config):
        try:
            info = time_info(source)
        except SentinelleError:
            info = TimeInfo((), None, None, frozenset())
        if source.product is not None:
            result.append(Layer(source, None, info))
            continue
        result.append(Layer(source, None, info))
        for name, spec in INDICES.items():
            if set(spec.bands) <= info.bands:
                result.append(Layer(source, name, info))
        for preset in source_presets(source):
            if not set(preset.bands) <= info.bands:
                continue
            dimension = derived_time(preset, info)
            if dimension is not None:
                result.append(Layer(source, None, dimension, preset))
    return result


def layer_map(config: dict | None = None) -> dict[str, Layer]:
    return {layer.name: layer for layer in layers(config)}
