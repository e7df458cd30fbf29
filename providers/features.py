"""OGC API Features from GeoPackage layers, with CQL2 filters that really filter.

pygeoapi 0.21's SQLite/OGR providers silently ignore ``filter``; this provider evaluates it.
A layer is read once with pyogrio into memory (geometries as shapely arrays with an STRtree,
properties as plain Python values) and cached at module level by path and modification time,
because pygeoapi builds a new provider for every request.  Geometries stay in the layer's CRS
(declared as ``storage_crs`` in the config); pygeoapi's ``crs_transform`` decorator reprojects
them for ``crs=``.  For very large layers, PostgreSQL/PostGIS with pygeoapi's own provider is
the production path.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import shapely
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from sentinelle.catalog.dates import parse_interval
from sentinelle.providers.cql import GEOMETRY_NAMES, compile_filter

try:  # pygeoapi >= 0.22
    from pygeoapi.crs import crs_transform
except ImportError:  # pygeoapi 0.21
    from pygeoapi.util import crs_transform

_JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "datetime": "string"}


@dataclass
class Layer:
    """One vector layer held in memory."""

    ids: list[str]
    index: dict[str, int]
    geometries: np.ndarray  # shapely geometries, storage CRS
    properties: list[dict[str, Any]]
    fields: dict[str, dict[str, str]]
    tree: shapely.STRtree
    crs: str | None


def _python(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _field_type(dtype: str) -> str:
    for prefix, json_type in _JSON_TYPES.items():
        if dtype.startswith(prefix) or dtype.startswith(f"u{prefix}"):
            return json_type
    return "string"


def read_layer(path: Path, layer: str | None, id_field: str) -> Layer:
    meta, _fids, wkb, field_data = pyogrio.raw.read(path, layer=layer)
    names = list(meta["fields"])
    dtypes = [str(d) for d in meta["dtypes"]]
    columns = [[_python(v) for v in column] for column in field_data]
    properties = [dict(zip(names, row)) for row in zip(*columns)] if names else \
        [{} for _ in range(len(wkb))]
    geometries = shapely.from_wkb(wkb)
    if id_field not in names:
        raise ProviderConnectionError(f"layer {layer or path.name} has no id field {id_field!r}")
    ids = [str(p[id_field]) for p in properties]
    fields = {name: {"type": _field_type(dtype)} for name, dtype in zip(names, dtypes)}
    return Layer(ids=ids, index={i: n for n, i in enumerate(ids)}, geometries=geometries,
                 properties=properties, fields=fields, tree=shapely.STRtree(geometries),
                 crs=meta.get("crs"))


_CACHE: dict[tuple, tuple[float, Layer]] = {}
_LOCK = threading.Lock()


def load_layer(path: str | Path, layer: str | None, id_field: str) -> Layer:
    """The layer, from the module cache unless the file changed."""
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise ProviderConnectionError(
            user_msg=f"dataset {path.name} is missing on the server; generate the sample data "
            "(`sentinelle sample-data`) or fix the configured path"
        ) from None
    key = (str(path.resolve()), layer, id_field)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None or cached[0] != mtime:
            _CACHE[key] = (mtime, read_layer(path, layer, id_field))
        return _CACHE[key][1]


class GeoPackageProvider(BaseProvider):
    """pygeoapi feature provider over one GeoPackage layer (``data``; ``options.layer``)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.id_field = self.id_field or "id"
        self.layer_name = (self.options or {}).get("layer")
        self._layer = load_layer(self.data, self.layer_name, self.id_field)
        self._fields = dict(self._layer.fields)

    def get_fields(self):
        return self._fields

    def _feature(self, n: int, *, select: list[str] | None = None,
                 skip_geometry: bool = False) -> dict:
        layer = self._layer
        props = layer.properties[n]
        if select:
            props = {k: v for k, v in props.items() if k in select}
        geometry = None if skip_geometry else json.loads(shapely.to_geojson(layer.geometries[n]))
        return {"type": "Feature", "id": layer.ids[n], "geometry": geometry,
                "properties": dict(props)}

    def _candidates(self, bbox, properties, filterq, q) -> list[int]:
        layer = self._layer
        if bbox:
            coords = [float(v) for v in bbox]
            if len(coords) == 6:  # 3D bbox: drop the heights
                coords = coords[0:2] + coords[3:5]
            hits = layer.tree.query(shapely.box(*coords), predicate="intersects")
            candidates = sorted(int(i) for i in hits)
        else:
            candidates = list(range(len(layer.ids)))
        for name, value in properties or []:
            candidates = [n for n in candidates
                          if str(layer.properties[n].get(name)) == str(value)]
        if q:
            terms = [t.lower() for t in str(q).split(",") if t.strip()]
            candidates = [n for n in candidates if any(
                term in str(v).lower() for v in layer.properties[n].values() for term in terms)]
        if filterq is not None:
            try:
                matches = compile_filter(filterq, self._fields)
                candidates = [n for n in candidates if matches(
                    {**layer.properties[n], **{g: layer.geometries[n] for g in GEOMETRY_NAMES}})]
            except ValueError as err:
                raise ProviderInvalidQueryError(user_msg=f"invalid filter: {err}") from err
        return candidates

    @crs_transform
    def query(self, offset=0, limit=10, resulttype="results", bbox=None, datetime_=None,
              properties=None, sortby=None, select_properties=None, skip_geometry=False,
              q=None, filterq=None, crs_transform_spec=None, **kwargs):
        if datetime_:
            try:  # no temporal property here, but a malformed value is still a client error
                parse_interval(datetime_)
            except ValueError as err:
                raise ProviderInvalidQueryError(user_msg=str(err)) from err
        candidates = self._candidates(bbox, properties, filterq, q)
        for sort in reversed(sortby or []):
            name = sort["property"]
            candidates.sort(
                key=lambda n: (self._layer.properties[n].get(name) is None,
                               self._layer.properties[n].get(name)),
                reverse=sort.get("order") == "-")
        matched = len(candidates)
        page = [] if resulttype == "hits" else candidates[offset:offset + limit]
        features = [self._feature(n, select=select_properties, skip_geometry=skip_geometry)
                    for n in page]
        return {"type": "FeatureCollection", "features": features,
                "numberMatched": matched, "numberReturned": len(features)}

    @crs_transform
    def get(self, identifier, crs_transform_spec=None, **kwargs):
        n = self._layer.index.get(str(identifier))
        if n is None:
            raise ProviderItemNotFoundError(user_msg=f"no feature with id {identifier!r}")
        return self._feature(n)

    def __repr__(self):
        return f"<GeoPackageProvider> {self.data}"
