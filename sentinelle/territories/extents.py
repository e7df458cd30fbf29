"""Temporal extents that follow the catalogs: when new scenes arrive, the collections say so.

pygeoapi describes a collection from its configuration, read once at start-up.  The imagery
collections, the scene records and the products records are refreshed here, in the
configuration pygeoapi holds in memory, from what the territories' sources really hold over
their areas (footprints only, nothing read; remembered :data:`TTL` seconds): the temporal
extent spans the first to the last scene, and a collection whose source has nothing over its
territory keeps no temporal extent and says why in its description (never a 500, never a
silent empty answer).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any, Mapping, MutableMapping

from sentinelle.territories.model import ImagerySource
from sentinelle.territories.registry import Registry

LOGGER = logging.getLogger(__name__)

#: seconds the dates of a source over its territory are remembered (a STAC API may publish
#: new scenes at any time; a static catalog is re-read when its files change)
TTL = 600.0
#: what a collection whose source has nothing over its territory adds to its description
EMPTY_NOTE = {
    "fr": " — Aucune scène de la source ne couvre encore ce territoire : l'étendue temporelle "
          "est vide ; vérifiez la configuration avec `sentinelle territory check`.",
    "en": " — No scene of the source covers this territory yet: the temporal extent is "
          "empty; check the configuration with `sentinelle territory check`.",
}
ORIGINAL = "x-sentinelle-description"
RECORD_PROVIDERS = ("sentinelle.providers.records.SceneRecordsProvider",
                    "sentinelle.providers.products.ProductRecordsProvider")

_DATES: dict[tuple, tuple[float, int, tuple[dt.datetime, dt.datetime] | None]] = {}
_LOCK = threading.Lock()


def source_span(registry: Registry, source: ImagerySource
                ) -> tuple[dt.datetime, dt.datetime] | None:
    """First and last scene datetimes of ``source`` over its territory (None: no scene),
    remembered :data:`TTL` seconds per catalog object."""
    catalog = source.open()
    key = (source.territory, source.id)
    now = time.monotonic()
    with _LOCK:
        cached = _DATES.get(key)
    if cached is not None and cached[0] > now and cached[1] == id(catalog):
        return cached[2]
    scenes = catalog.find(registry.area(source.territory))
    span = (scenes[0].datetime, scenes[-1].datetime) if scenes else None
    with _LOCK:
        _DATES[key] = (now + TTL, id(catalog), span)
    return span


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _describe(resource: MutableMapping[str, Any], span) -> None:
    extents = resource.setdefault("extents", {})
    if ORIGINAL not in resource:
        resource[ORIGINAL] = resource.get("description")
    original = resource[ORIGINAL]
    if span is None:
        extents.pop("temporal", None)
        if isinstance(original, Mapping):
            resource["description"] = {lang: f"{original.get(lang, original.get('fr', ''))}"
                                       f"{EMPTY_NOTE.get(lang, EMPTY_NOTE['en'])}"
                                       for lang in ("fr", "en")}
        return
    extents["temporal"] = {"begin": _iso(span[0]), "end": _iso(span[1])}
    resource["description"] = original


def refresh(config: MutableMapping[str, Any], registry: Registry) -> None:
    """Update the temporal extents (and descriptions) of ``config``'s imagery and records
    collections in place."""
    resources = config.get("resources") or {}
    spans = []
    for cid, resource in resources.items():
        found = registry.collection(cid)
        if found is None:
            continue
        try:
            span = source_span(registry, found[0])
        except Exception as err:  # noqa: BLE001 - an upstream down: keep what was said
            LOGGER.warning("temporal extent of %s not refreshed: %s", cid, err)
            continue
        _describe(resource, span)
        if span is not None and found[0].kind == "optical":
            spans.append(span)
    union = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
    for resource in resources.values():
        names = {p.get("name") for p in resource.get("providers") or []}
        if names & set(RECORD_PROVIDERS):
            _describe(resource, union)


_LAST: dict[int, float] = {}
#: seconds between two refreshes of one configuration (the sources' own answers are cached
#: :data:`TTL` seconds; this only bounds the walk over the resources)
INTERVAL = 5.0


def refresh_every(config: MutableMapping[str, Any], registry: Registry) -> None:
    """:func:`refresh`, at most every :data:`INTERVAL` seconds per configuration object."""
    now = time.monotonic()
    with _LOCK:
        if _LAST.get(id(config), 0.0) > now:
            return
        _LAST[id(config)] = now + INTERVAL
    refresh(config, registry)
