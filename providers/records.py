"""OGC API Records: one record per Sentinel-2 scene of the catalog, so users can discover what
exists (date, cloud cover, footprint, tile) before asking for pixels.

Built on the catalog layer (``sentinelle.catalog``), never on raw STAC files: the records show
the same scenes, with the same normalised band names, that the processes will read.  Asset
links point to the files as the server publishes them (``asset_base_url``, the ``/stac``
browse endpoint over the same folder) — never to a local path.
"""

from __future__ import annotations

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
from sentinelle.catalog.source import StaticCatalog, open_catalog
from sentinelle.errors import NotFound, SentinelleError
from sentinelle.providers.cql import GEOMETRY_NAMES, compile_filter
from sentinelle.settings import Limits

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

class SceneRecordsProvider(BaseProvider):
    """pygeoapi ``record`` provider over a Sentinelle catalog (``data``: path or STAC API URL)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        options = self.options or {}
        self.preset = options.get("preset", "auto")
        self.asset_base_url = (provider_def.get("asset_base_url") or "").rstrip("/")
        #: where ``/metadata/{id}.xml`` (ISO 19139, sentinelle.ows.metadata) is served
        self.metadata_base_url = (provider_def.get("metadata_base_url") or "").rstrip("/")
        self.max_scenes = Limits.from_env().max_search_items
        try:
            self._catalog = open_catalog(self.data, self.preset)
        except SentinelleError as err:
            raise ProviderConnectionError(user_msg=str(err)) from err
        self._fields = dict(FIELDS)

    def get_fields(self):
        return self._fields

    def _asset_href(self, href: str) -> str | None:
        if not isinstance(self._catalog, StaticCatalog) or not self.asset_base_url:
            return href if href.startswith(("http://", "https://")) else None
        root = self._catalog.path.parent
        try:
            relative = Path(href).resolve().relative_to(root)
        except ValueError:
            return None
        return f"{self.asset_base_url}/{relative.as_posix()}"

    def _properties(self, scene: Scene) -> dict[str, Any]:
        tile = scene.mgrs_tile or "?"
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
        scenes = self._catalog.find(area, interval, limit=self.max_scenes)
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
            return self._record(self._catalog.get(str(identifier)))
        except NotFound as err:
            raise ProviderItemNotFoundError(user_msg=str(err)) from err

    def __repr__(self):
        return f"<SceneRecordsProvider> {self.data}"
