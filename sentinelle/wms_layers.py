"""The WMS layers: one true-colour layer (``<area>:OI.OrthoimageCoverage``, INSPIRE's
orthoimagery layer name) and one layer per spectral index of the registry (``<area>:NDVI``…)
for each imagery area of the pygeoapi configuration.

Areas are read from the configuration's imagery collections (``SentinelCoverageProvider`` /
``SentinelMapProvider`` ``options.area``), so the WMS serves the same places, catalog, cloud
threshold and composite method as OGC API Coverages/Maps.  An index is offered only when the
area's scenes carry all its bands (NBR needs ``swir22``, absent from the sample).

Dates and the default date (latest at most ``max_cloud`` % cloudy over the whole area) cost a
read of SCL per scene; they are cached per catalog object (re-read when the catalog file
changes, as :func:`sentinelle.catalog.source.open_catalog` does).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinelle.analysis.indices import INDICES, get_index
from sentinelle.catalog.area import Area
from sentinelle.catalog.search import search
from sentinelle.catalog.source import Catalog, open_catalog
from sentinelle.errors import SentinelleError
from sentinelle.rendering import DEFAULT_MAX_CLOUD, INDEX_RAMPS, resolve_area
from sentinelle.settings import Limits

TRUE_COLOR = "OI.OrthoimageCoverage"
TRUE_COLOR_STYLE = "true-color"
PROVIDERS = ("sentinelle.providers.coverage.SentinelCoverageProvider",
             "sentinelle.providers.maps.SentinelMapProvider")
#: CRSs offered everywhere (WMS 1.3.0 axis order is handled by :mod:`wms_params`).
COMMON_CRS = ("CRS:84", "EPSG:4326", "EPSG:3857")
#: National and INSPIRE CRSs per area: Lambert-93, ETRS89, ETRS89-LAEA in Brittany;
#: RGFG95 / UTM 22N and RGFG95 geographic in French Guiana.
AREA_CRS = {"bretagne": ("EPSG:2154", "EPSG:4258", "EPSG:3035"),
            "guyane": ("EPSG:2972", "EPSG:4624")}
AREA_TITLES = {"bretagne": {"fr": "Bretagne (est de Rennes)", "en": "Brittany (east of Rennes)"},
               "guyane": {"fr": "Guyane (Montsinéry-Tonnegrande)",
                          "en": "French Guiana (Montsinéry-Tonnegrande)"}}


@dataclass(frozen=True)
class AreaSource:
    """One imagery area of the configuration."""

    name: str
    catalog_source: str
    areas_path: str | None
    composite: str
    max_cloud: float
    collections: tuple[str, ...]  # the pygeoapi collections over this area

    @property
    def catalog(self) -> Catalog:
        return open_catalog(self.catalog_source)

    @property
    def area(self) -> Area:
        return resolve_area(self.name, self.areas_path)

    @property
    def title(self) -> dict[str, str]:
        name = self.name.replace("-", " ").capitalize()
        return AREA_TITLES.get(self.name, {"fr": name, "en": name})


@dataclass(frozen=True)
class TimeInfo:
    dates: tuple[str, ...]
    default: str | None
    native_epsg: int | None
    bands: frozenset[str]


@dataclass(frozen=True)
class Layer:
    """A named WMS layer: an area and a product (``index`` None = true colour)."""

    source: AreaSource
    index: str | None
    time: TimeInfo = field(compare=False)

    @property
    def name(self) -> str:
        return f"{self.source.name}:{self.index or TRUE_COLOR}"

    @property
    def product_id(self) -> str:
        """The id of the product's metadata record (``bretagne-s2``, ``bretagne-ndvi``…),
        the same as the OGC API collection when there is one."""
        return f"{self.source.name}-{(self.index or 's2').lower()}"

    @property
    def style(self) -> str:
        return self.index.lower() if self.index else TRUE_COLOR_STYLE

    @property
    def ramp(self) -> str | None:
        return INDEX_RAMPS.get(self.index, "ndvi") if self.index else None

    @property
    def crs(self) -> tuple[str, ...]:
        native = (f"EPSG:{self.time.native_epsg}",) if self.time.native_epsg else ()
        return tuple(dict.fromkeys(COMMON_CRS + AREA_CRS.get(self.source.name, ()) + native))

    def title(self, lang: str) -> str:
        area = self.source.title[lang]
        if self.index is None:
            return (f"Orthoimagerie Sentinel-2 en couleurs naturelles — {area}" if lang == "fr"
                    else f"Sentinel-2 orthoimagery, true colour — {area}")
        spec = get_index(self.index)
        return f"{spec.name} — {spec.title[lang]} — {area}"

    def abstract(self, lang: str) -> str:
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

    def keywords(self, lang: str) -> list[str]:
        area = self.source.title[lang].split(" (")[0]
        common = ["Copernicus", "Sentinel-2", area]
        if self.index is None:
            return common + (["Orthoimagerie", "couleurs naturelles"] if lang == "fr"
                             else ["Orthoimagery", "true colour"])
        return common + [self.index] + (["indice spectral"] if lang == "fr"
                                        else ["spectral index"])


def _config_path() -> Path:
    from sentinelle.server import DEFAULT_CONFIG

    return Path(os.environ.get("PYGEOAPI_CONFIG") or DEFAULT_CONFIG)


_CONFIG_CACHE: dict[str, tuple[float, dict]] = {}
_LOCK = threading.Lock()


def load_config(path: str | Path | None = None) -> dict:
    """The pygeoapi configuration (``${VAR}`` interpolated), cached by modification time."""
    from pygeoapi.util import yaml_load

    path = Path(path or _config_path())
    mtime = path.stat().st_mtime
    with _LOCK:
        cached = _CONFIG_CACHE.get(str(path))
        if cached is None or cached[0] != mtime:
            with path.open(encoding="utf-8") as handle:
                _CONFIG_CACHE[str(path)] = (mtime, yaml_load(handle))
        return _CONFIG_CACHE[str(path)][1]


def area_sources(config: dict) -> list[AreaSource]:
    """The imagery areas of the configuration, in configuration order."""
    found: dict[str, dict[str, Any]] = {}
    for cid, resource in (config.get("resources") or {}).items():
        for provider in resource.get("providers") or []:
            if provider.get("name") not in PROVIDERS:
                continue
            options = provider.get("options") or {}
            name = options.get("area")
            if not isinstance(name, str):
                continue
            entry = found.setdefault(name, {"data": provider.get("data"),
                                            "areas": options.get("areas"),
                                            "composite": options.get("composite", "median"),
                                            "max_cloud": options.get("max_cloud",
                                                                     DEFAULT_MAX_CLOUD),
                                            "collections": []})
            if cid not in entry["collections"]:
                entry["collections"].append(cid)
    return [AreaSource(name, str(e["data"]), e["areas"], str(e["composite"]),
                       float(e["max_cloud"]), tuple(e["collections"]))
            for name, e in found.items()]


_TIME_CACHE: dict[tuple, TimeInfo] = {}


def time_info(source: AreaSource) -> TimeInfo:
    """Dates with data over the area, the default (latest clear) date, native UTM zone and
    the bands the scenes carry (cached per catalog object)."""
    catalog = source.catalog
    key = (source.name, source.catalog_source, id(catalog), source.max_cloud)
    with _LOCK:
        if key in _TIME_CACHE:
            return _TIME_CACHE[key]
    area = source.area
    matches = search(catalog, area, None, limits=Limits.from_env())
    dates = tuple(sorted({m.scene.date.isoformat() for m in matches}))
    clear = [m for m in matches if m.cloud_fraction * 100 <= source.max_cloud]
    default = clear[-1].scene.date.isoformat() if clear else None
    epsg = Counter(m.scene.epsg for m in matches).most_common(1)[0][0] if matches else None
    bands = frozenset.intersection(*(frozenset(m.scene.assets) for m in matches)) \
        if matches else frozenset()
    info = TimeInfo(dates, default, epsg, bands)
    with _LOCK:
        _TIME_CACHE[key] = info
    return info


def layers(config: dict | None = None) -> list[Layer]:
    """Every WMS layer, grouped by area (true colour first, then the registry's indices)."""
    config = config if config is not None else load_config()
    result = []
    for source in area_sources(config):
        try:
            info = time_info(source)
        except SentinelleError:
            info = TimeInfo((), None, None, frozenset())
        result.append(Layer(source, None, info))
        for name, spec in INDICES.items():
            if set(spec.bands) <= info.bands:
                result.append(Layer(source, name, info))
    return result


def layer_map(config: dict | None = None) -> dict[str, Layer]:
    return {layer.name: layer for layer in layers(config)}
