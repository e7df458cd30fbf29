"""OGC API Records: one record per Sentinel-2 scene of the territories' sources, so users can
discover what exists (date, cloud cover, footprint, tile) before asking for pixels.

Built on the catalog layer (``sentinelle.catalog``), never on raw STAC files: the records show
the same scenes, with the same normalised band names, that the processes will read.  The
sources are the territories' Sentinel-2 sources (``sources``: ``{territory, source}`` pairs,
filled in from the territory blocks), or one catalog (``data``, a path or STAC API URL).
Asset links point to the files as the server publishes them (files under ``asset_root``
become ``asset_base_url`` + their relative path, the ``/stac`` browse endpoint over the same
folder; remote files keep their URL) — never to a local path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import shapely
import shapely.geometry
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from sentinelle.catalog.area import Area
from sentinelle.catalog.dates import parse_interval
from sentinelle.catalog.scenes import Scene
from sentinelle.catalog.source import Catalog, open_catalog
from sentinelle.errors import NotFound, SentinelleError, SourceUnavailable
from sentinelle.providers.cql import GEOMETRY_NAMES, compile_filter
from sentinelle.providers.errors import to_provider_error
from sentinelle.settings import Limits

LOGGER = logging.getLogger(__name__)

FIELDS = {
    "title": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
    "eo:cloud_cover": {"type": "number"},
    "platform": {"type": "string"},
    "constellation": {"type": "string"},
    "s2:mgrs_tile": {"type": "string"},
    "proj:epsg": {"type": "integer"},
    "bands": {"type": "string"},
}

_BAND_TITLES = {"blue": "B02 bleu / blue", "green": "B03 vert / green", "red": "B04 rouge / red",
                "nir": "B08 proche infrarouge / near infrared",
                "swir16": "B11 infrarouge moyen / SWIR 1.6 µm",
                "scl": "SCL classification de scène / scene classification"}



def filter_sort_page(records: list[tuple[Any, dict]], filterq, fields: dict,
                     geometry: Callable[[Any], Any], sortby: list | None, offset: int,
                     limit: int, resulttype: str) -> tuple[list, int, list]:
    """The CQL2 filter, ``sortby`` and paging shared by the record providers, over
    ``(object, properties)`` pairs whose geometry is ``geometry(object)``; returns the
    matching records, their number and the page."""
    if filterq is not None:
        try:
            matches = compile_filter(filterq, fields)
            records = [(obj, p) for obj, p in records if matches(
                {**p, **{g: geometry(obj) for g in GEOMETRY_NAMES}})]
        except ValueError as err:
            raise ProviderInvalidQueryError(user_msg=f"invalid filter: {err}") from err
    for sort in reversed(sortby or []):
        name = sort["property"]
        records.sort(key=lambda op: (op[1].get(name) is None, op[1].get(name)),
                     reverse=sort.get("order") == "-")
    page = [] if resulttype == "hits" else records[offset:offset + limit]
    return records, len(records), page

def record_catalogs(provider_def: dict) -> list[Catalog]:
    """The catalogs a scene records provider lists: the territories' sources named in
    ``sources``, else the catalog at ``data``."""
    sources = provider_def.get("sources")
    if sources:
        from sentinelle.territories import registry

        found = registry()
        return [found.source(str(s["territory"]), str(s["source"])).open() for s in sources]
    options = provider_def.get("options") or {}
    return [open_catalog(provider_def["data"], options.get("preset", "auto"))]


def find_scene(catalogs: list[Catalog], scene_id: str) -> Scene:
    """The scene ``scene_id`` of the first catalog that has it (:class:`NotFound` else)."""
    for catalog in catalogs:
        try:
            return catalog.get(scene_id)
        except NotFound:
            continue
    raise NotFound(f"no scene {scene_id!r} in the catalogs")


class SceneRecordsProvider(BaseProvider):
    """pygeoapi ``record`` provider over the territories' Sentinel-2 sources (see the module
    docstring)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.asset_base_url = (provider_def.get("asset_base_url") or "").rstrip("/")
        root = provider_def.get("asset_root")
        self.asset_root = Path(root).resolve() if root else None
        #: where ``/metadata/{id}.xml`` (ISO 19139, sentinelle.ows.metadata) is served
        self.metadata_base_url = (provider_def.get("metadata_base_url") or "").rstrip("/")
        self.max_scenes = Limits.from_env().max_search_items
        try:
            self._catalogs = record_catalogs(provider_def)
        except SentinelleError as err:
            raise ProviderConnectionError(user_msg=str(err)) from err
        self._fields = dict(FIELDS)

    def get_fields(self):
        return self._fields

    def _asset_href(self, href: str) -> str | None:
        if href.startswith(("http://", "https://")):
            return href
        if self.asset_root is None or not self.asset_base_url:
            return None
        try:
            relative = Path(href).resolve().relative_to(self.asset_root)
        except ValueError:
            return None
        return f"{self.asset_base_url}/{relative.as_posix()}"

    def _properties(self, scene: Scene) -> dict[str, Any]:
        tile = scene.mgrs_tile or scene.id
        day = scene.date.isoformat()
        cloud = scene.cloud_cover
        return {
            "type": "dataset",
            "title": f"Sentinel-2 L2A {tile} {day}",
            "description": (
                f"Scène Sentinel-2 niveau 2A (réflectance de surface) de la tuile {tile} du {day}"
                + (f", {cloud:.1f} % de nuages sur la tuile" if cloud is not None else "")
                + ". / Sentinel-2 Level-2A surface reflectance scene."),
            "datetime": scene.datetime.isoformat().replace("+00:00", "Z"),
            "time": {"date": day},
            "eo:cloud_cover": cloud,
            "platform": scene.properties.get("platform"),
            "constellation": scene.properties.get("constellation", "sentinel-2"),
            "s2:mgrs_tile": scene.mgrs_tile,
            "proj:epsg": scene.epsg,
            "bands": ",".join(scene.assets),
            "keywords": ["Copernicus", "Sentinel-2", "L2A", "réflectance", "imagerie satellite",
                         "Orthoimagerie"],
            "license": "Copernicus Sentinel data, free, full and open access",
            "language": {"code": "fr"},
        }

    def _record(self, scene: Scene, *, skip_geometry: bool = False,
                select: list[str] | None = None) -> dict:
        properties = self._properties(scene)
        if select:
            properties = {k: v for k, v in properties.items() if k in select}
        links = []
        if self.metadata_base_url:
            links.append({"rel": "describedby", "type": "application/xml",
                          "href": f"{self.metadata_base_url}/{scene.id}.xml",
                          "title": "Fiche ISO 19139 (INSPIRE) / ISO 19139 record (INSPIRE)"})
        for band, asset in scene.assets.items():
            href = self._asset_href(asset.href)
            if href:
                links.append({"rel": "enclosure", "href": href,
                              "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                              "title": _BAND_TITLES.get(band, band)})
        return {
            "id": scene.id,
            "type": "Feature",
            "geometry": None if skip_geometry else shapely.geometry.mapping(scene.footprint),
            "properties": properties,
            "links": links,
        }

    def query(self, offset=0, limit=10, resulttype="results", bbox=None, datetime_=None,
              properties=None, sortby=None, select_properties=None, skip_geometry=False,
              q=None, filterq=None, **kwargs):
        try:
            area = Area.from_bbox(bbox) if bbox else None
            interval = parse_interval(datetime_) if datetime_ else None
        except ValueError as err:
            raise ProviderInvalidQueryError(user_msg=str(err)) from err
        # bounded: a STAC API behind this collection may hold millions of scenes
        scenes, seen, failures = [], set(), []
        for catalog in self._catalogs:
            try:
                found = catalog.find(area, interval, limit=self.max_scenes)
            except SourceUnavailable as err:  # one territory's upstream down: the others
                failures.append(err)  # still answer (and the error is logged)
                LOGGER.warning("scene records: a source is left out: %s", err)
                continue
            for scene in found:
                if scene.id not in seen:
                    seen.add(scene.id)
                    scenes.append(scene)
        if failures and len(failures) == len(self._catalogs):
            raise to_provider_error(failures[0]) from failures[0]
        scenes.sort(key=lambda scene: (scene.datetime, scene.id))
        records = [(scene, self._properties(scene)) for scene in scenes]
        for name, value in properties or []:
            records = [(s, p) for s, p in records if str(p.get(name)) == str(value)]
        if q:
            terms = [t.strip().lower() for t in str(q).split(",") if t.strip()]
            records = [(s, p) for s, p in records if any(
                term in f"{p['title']} {p['description']} {s.id}".lower() for term in terms)]
        records, matched, page = filter_sort_page(
            records, filterq, self._fields, lambda scene: scene.footprint, sortby,
            offset, limit, resulttype)
        features = [self._record(s, skip_geometry=skip_geometry, select=select_properties)
                    for s, _ in page]
        return {"type": "FeatureCollection", "features": features,
                "numberMatched": matched, "numberReturned": len(features)}

    def get(self, identifier, **kwargs):
        try:
            return self._record(find_scene(self._catalogs, str(identifier)))
        except NotFound as err:
            raise ProviderItemNotFoundError(user_msg=str(err)) from err

    def __repr__(self):
        return f"<SceneRecordsProvider> {self.data}"
