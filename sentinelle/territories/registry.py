"""The territories the server serves, looked up by every adapter (providers, processes, OGC
web services, the dashboard) from the configuration pygeoapi loaded.

:func:`registry` reads the served configuration (``PYGEOAPI_CONFIG``, the file
:func:`sentinelle.territories.resources.write_resolved` generated; the repository's
``pygeoapi-config.yml`` when unset), parses its ``territories`` once per modification and
answers: which territory and source a collection belongs to, the area of a territory, which
sources cover an area (processes pick their imagery this way), and the feature provider of a
collection (areas and zones defined by a served collection).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from sentinelle.catalog.area import CRS84, Area
from sentinelle.errors import NotFound
from sentinelle.settings import DEFAULT_CONFIG
from sentinelle.territories.areas import resolve_area
from sentinelle.territories.model import (
    ImagerySource,
    LocalLayer,
    Territory,
    parse_territories,
)


def config_path() -> Path:
    """The configuration pygeoapi serves (``PYGEOAPI_CONFIG``), else the repository's."""
    return Path(os.environ.get("PYGEOAPI_CONFIG") or DEFAULT_CONFIG)


_CONFIG_CACHE: dict[str, tuple[float, dict]] = {}
_LOCK = threading.Lock()


def load_config(path: str | Path | None = None) -> dict:
    """The configuration (``${VAR}`` interpolated), cached by modification time."""
    from pygeoapi.util import yaml_load

    path = Path(path or config_path())
    mtime = path.stat().st_mtime
    with _LOCK:
        cached = _CONFIG_CACHE.get(str(path))
        if cached is None or cached[0] != mtime:
            with path.open(encoding="utf-8") as handle:
                _CONFIG_CACHE[str(path)] = (mtime, yaml_load(handle))
        return _CONFIG_CACHE[str(path)][1]


@dataclass(frozen=True)
class Registry:
    """The parsed territories of one configuration."""

    config: Mapping[str, Any]
    territories: tuple[Territory, ...]

    def territory(self, territory_id: str) -> Territory:
        for territory in self.territories:
            if territory.id == territory_id:
                return territory
        known = ", ".join(t.id for t in self.territories) or "none"
        raise NotFound(f"no territory {territory_id!r}; configured: {known}")

    def source(self, territory_id: str, source_id: str) -> ImagerySource:
        territory = self.territory(territory_id)
        try:
            return territory.source(source_id)
        except KeyError:
            known = ", ".join(s.id for s in territory.imagery) or "none"
            raise NotFound(f"territory {territory_id!r} has no imagery source "
                           f"{source_id!r}; configured: {known}") from None

    @property
    def sources(self) -> list[ImagerySource]:
        return [s for t in self.territories for s in t.imagery]

    @property
    def layers(self) -> list[LocalLayer]:
        return [layer for t in self.territories for layer in t.layers]

    def provider_for(self, collection_id: str) -> tuple[Mapping, str] | None:
        """(feature provider definition, storage CRS) of a configured feature collection:
        a territory layer, or a ``resources`` entry with a feature provider."""
        for layer in self.layers:
            if layer.collection_id == collection_id:
                return dict(layer.provider), layer.storage_crs
        resource = (self.config.get("resources") or {}).get(collection_id) or {}
        for provider in resource.get("providers") or []:
            if provider.get("type") == "feature":
                return provider, str(provider.get("storage_crs") or "OGC:CRS84")
        return None

    def area(self, territory: Territory | str) -> Area:
        """The territory's area, CRS84 (cached)."""
        if isinstance(territory, str):
            territory = self.territory(territory)
        return resolve_area(territory.area, where=f"territories.{territory.id}.area",
                            provider_for=self.provider_for)

    def collection(self, collection_id: str) -> tuple[ImagerySource, str | None] | None:
        """The imagery source behind a collection id and its index (None: the bands or the
        product's values), or None when no source makes that collection."""
        for source in self.sources:
            if source.collection_id == collection_id:
                return source, None
            for index in source.indices:
                if source.index_collection_id(index) == collection_id:
                    return source, index
        return None

    def sources_for(self, area: Area, *, kind: str = "optical") -> list[ImagerySource]:
        """Sources of ``kind`` whose territory meets ``area``, the largest overlap first."""
        lonlat = area.to_crs(CRS84).geometry
        scored = []
        for order, territory in enumerate(self.territories):
            try:
                outline = self.area(territory).geometry
            except Exception:  # noqa: BLE001 - a broken territory must not hide the others
                continue
            if not outline.intersects(lonlat):
                continue
            overlap = outline.intersection(lonlat).area
            for source in territory.imagery:
                if source.kind == kind:
                    scored.append((-overlap, order, source))
        return [source for *_, source in sorted(scored, key=lambda s: (s[0], s[1]))]


_REGISTRIES: dict[tuple, Registry] = {}


def registry(config: Mapping[str, Any] | None = None) -> Registry:
    """The registry of ``config`` (default: the served configuration, cached by mtime)."""
    if config is None:
        path = config_path()
        config = load_config(path)
        key = (str(path), path.stat().st_mtime)
        with _LOCK:
            cached = _REGISTRIES.get(key)
        if cached is not None:
            return cached
        built = Registry(config, parse_territories(config))
        with _LOCK:
            _REGISTRIES.clear()
            _REGISTRIES[key] = built
        return built
    return Registry(config, parse_territories(config))
