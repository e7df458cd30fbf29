"""Our additions to the OpenAPI document pygeoapi generates from the configuration.

pygeoapi writes the document from ``pygeoapi-config.yml``; what it cannot know (our routes, the
security scheme, responses it forgets to declare) is added here, once, when the document is
written, so ``/openapi`` and ``sentinelle openapi`` serve the same text.

pygeoapi 0.21's document points its responses and some parameters at schemas.opengis.net and
GitHub (unreachable from a closed network, and several are wrong for the operation: the
collections list answers with a "landing page", a coverage with "features"), declares no
HTML/JSON-LD/CSV variants, no 413, and a catch-all ``default`` response on the processes.
:func:`finalize` replaces every operation's responses by what the server really answers
(checked by ``tests/test_fuzz.py`` with schemathesis), turns each process description into
the schema of its execute request, and declares the routes we add beside pygeoapi (WMS,
metadata records, downloads, licences, dashboard, legends, vendored assets).
"""

from __future__ import annotations

import copy
import logging
import os
import re
from typing import Any, Iterable

LOGGER = logging.getLogger(__name__)

Schema = dict[str, Any]

# --- schemas (OpenAPI 3.0 dialect), the shapes our server answers with ----------------------

JSON = "application/json"
GEOJSON = "application/geo+json"
JSONLD = "application/ld+json"
HTML = "text/html"
TEXT = "text/plain"
XML = "text/xml"
STRING: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}
BINARY: Schema = {"type": "string", "format": "binary"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


_NULLABLE_STRING: Schema = {"type": "string", "nullable": True}
_LINKS = _array(ref("link"))
_GEOMETRY_TYPES = ["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                   "MultiPolygon", "GeometryCollection"]
JOB_STATUSES = ["accepted", "running", "successful", "failed", "dismissed"]

SCHEMAS: dict[str, Schema] = {
    "exception": {
        "description": "pygeoapi's exception body (OGC API code and a message to act on)",
        "type": "object", "required": ["code", "description"],
        "properties": {"code": STRING, "type": STRING, "description": STRING}},
    "link": {
        "type": "object", "required": ["href"],
        "properties": {"href": STRING, "rel": STRING, "type": STRING, "hreflang": STRING,
                       "title": STRING, "length": {"type": "integer"}}},
    "landingPage": {
        "type": "object", "required": ["links"],
        "properties": {"title": STRING, "description": STRING, "links": _LINKS}},
    "confClasses": {
        "type": "object", "required": ["conformsTo"],
        "properties": {"conformsTo": _array(STRING, minItems=1)}},
    "extent": {
        "type": "object",
        "properties": {
            "spatial": {"type": "object", "properties": {
                "bbox": _array(_array({"type": "number"}, minItems=4, maxItems=6)),
                "crs": STRING}},
            "temporal": {"type": "object", "properties": {
                "interval": _array(_array(_NULLABLE_STRING, minItems=2, maxItems=2)),
                "trs": STRING}}}},
    "collection": {
        "type": "object", "required": ["id", "links"],
        "properties": {"id": STRING, "title": STRING, "description": STRING,
                       "keywords": _array(STRING), "links": _LINKS, "extent": ref("extent"),
                       "itemType": STRING, "crs": _array(STRING), "storageCrs": STRING}},
    "collections": {
        "type": "object", "required": ["links", "collections"],
        "properties": {"links": _LINKS, "collections": _array(ref("collection"))}},
    "geometry": {
        "type": "object", "nullable": True, "required": ["type"],
        "properties": {"type": {"type": "string", "enum": _GEOMETRY_TYPES},
                       "coordinates": {"type": "array"},
                       "geometries": {"type": "array"}}},
    "feature": {
        "type": "object", "required": ["type", "geometry", "properties"],
        "properties": {"type": {"type": "string", "enum": ["Feature"]},
                       "id": {"anyOf": [STRING, {"type": "integer"}]},
                       "geometry": ref("geometry"),
                       "properties": {"type": "object", "nullable": True},
                       "links": _LINKS}},
    "featureCollection": {
        "type": "object", "required": ["type", "features"],
        "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                       "features": _array(ref("feature")),
                       "numberMatched": {"type": "integer", "minimum": 0},
                       "numberReturned": {"type": "integer", "minimum": 0},
                       "timeStamp": STRING, "links": _LINKS}},
    "jsonSchema": {
        "description": "a JSON Schema (queryables, feature schema)",
        "type": "object", "required": ["type", "properties"],
        "properties": {"type": {"type": "string", "enum": ["object"]},
                       "properties": OBJECT, "title": STRING}},
    "coverageJSON": {
        "type": "object", "required": ["type", "domain"],
        "properties": {"type": {"type": "string", "enum": ["Coverage"]},
                       "domain": {"type": "object", "required": ["axes"],
                                  "properties": {"axes": OBJECT}},
                       "parameters": OBJECT, "ranges": OBJECT}},
    "processSummary": {
        "type": "object", "required": ["id", "version"],
        "properties": {
            "id": STRING, "version": STRING, "title": STRING, "description": STRING,
            "keywords": _array(STRING),
            "jobControlOptions": _array({"type": "string",
                                         "enum": ["sync-execute", "async-execute",
                                                  "dismiss"]}),
            "outputTransmission": _array({"type": "string", "enum": ["value", "reference"]}),
            "links": _LINKS}},
    "process": {
        "allOf": [ref("processSummary"),
                  {"type": "object", "required": ["inputs", "outputs"],
                   "properties": {"inputs": OBJECT, "outputs": OBJECT}}]},
    "processList": {
        "type": "object", "required": ["processes", "links"],
        "properties": {"processes": _array(ref("processSummary")), "links": _LINKS}},
    "statusInfo": {
        "type": "object", "required": ["jobID", "status", "type"],
        "properties": {
            "type": {"type": "string", "enum": ["process"]},
            "processID": _NULLABLE_STRING, "jobID": STRING,
            "status": {"type": "string", "enum": JOB_STATUSES},
            "message": _NULLABLE_STRING,
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "created": _NULLABLE_STRING, "started": _NULLABLE_STRING,
            "finished": _NULLABLE_STRING, "updated": _NULLABLE_STRING,
            "links": _LINKS}},
    "jobList": {
        "type": "object", "required": ["jobs", "links"],
        "properties": {"jobs": _array(ref("statusInfo")),
                       "numberMatched": {"type": "integer", "minimum": 0},
                       "numberReturned": {"type": "integer", "minimum": 0},
                       "links": _LINKS}},
    "openapi": {
        "type": "object", "required": ["openapi", "info", "paths"],
        "properties": {"openapi": STRING, "info": OBJECT, "paths": OBJECT}},
    "stacCatalog": {
        "type": "object", "required": ["id", "type", "links"],
        "properties": {"id": STRING, "type": {"type": "string",
                                              "enum": ["Catalog", "Collection", "Feature"]},
                       "stac_version": STRING, "description": STRING, "links": _LINKS}},
    "tileMatrixSets": {
        "type": "object", "required": ["tileMatrixSets"],
        "properties": {"tileMatrixSets": _array({"type": "object", "required": ["id"],
                                                 "properties": {"id": STRING}})}},
    "tileMatrixSet": {
        "type": "object", "required": ["id", "crs"],
        "properties": {"id": STRING, "crs": STRING, "tileMatrices": {"type": "array"}}},
}


# --- responses -----------------------------------------------------------------------------

def _content(variants: dict[str, Schema]) -> dict[str, Any]:
    return {media: {"schema": schema} for media, schema in variants.items()}


def response(description: str, variants: dict[str, Schema] | None = None,
             headers: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if variants:
        out["content"] = _content(variants)
    if headers:
        out["headers"] = headers
    return out


def pages(json_schema: Schema, json_type: str = JSON, *, jsonld: bool = True,
          extra: dict[str, Schema] | None = None) -> dict[str, Schema]:
    """A pygeoapi resource in its ``f`` variants: JSON, HTML and (mostly) JSON-LD."""
    variants = {json_type: json_schema, HTML: STRING}
    if jsonld:
        variants[JSONLD] = OBJECT
    variants.update(extra or {})
    return variants


#: pygeoapi's error bodies: JSON, or the format asked for (an HTML page, JSON-LD)
_ERROR = {JSON: ref("exception"), JSONLD: ref("exception"), HTML: STRING}

RESPONSES: dict[str, dict[str, Any]] = {
    "InvalidParameter": response("A parameter or the request body is invalid (the message "
                                 "says which and why).", _ERROR),
    "NotFound": response("The resource does not exist, or no data matches the request.",
                         _ERROR),
    "TooLarge": response("The request exceeds a configured limit (pixels, dates, zones, "
                         "body size).", _ERROR),
    "ServerError": response("A server error.", _ERROR),
    "SourceUnavailable": response("A data source could not be read (unreadable asset, "
                                  "upstream STAC API or COG host down or too slow: 502, 503, "
                                  "504); other requests are unaffected.", _ERROR),
    "StorageFull": response("The results folder is full.", _ERROR),
}


def _errors(*codes: str, faults: bool = False, storage: bool = False) -> dict[str, Any]:
    names = {"400": "InvalidParameter", "404": "NotFound", "413": "TooLarge"}
    out = {code: {"$ref": f"#/components/responses/{names[code]}"} for code in codes}
    out["500"] = {"$ref": "#/components/responses/ServerError"}
    if faults:
        for code in ("502", "503", "504"):
            out[code] = {"$ref": "#/components/responses/SourceUnavailable"}
    if storage:
        out["507"] = {"$ref": "#/components/responses/StorageFull"}
    return out


# --- parameters that pygeoapi points at external documents ----------------------------------

PARAMETERS: dict[str, dict[str, Any]] = {
    "featureId": {"name": "featureId", "in": "path", "required": True,
                  "description": "identifier of a feature", "schema": STRING},
    "datetime": {"name": "datetime", "in": "query", "required": False, "style": "form",
                 "explode": False,
                 "description": "a date-time or an interval (RFC 3339, `..` for open ends)",
                 "schema": STRING},
    "sortby": {"name": "sortby", "in": "query", "required": False, "style": "form",
               "explode": False,
               "description": "properties to sort by, `-` for descending",
               "schema": _array({"type": "string", "pattern": "^[+-]?[A-Za-z_].*$"},
                                minItems=1)},
    "q": {"name": "q", "in": "query", "required": False, "style": "form", "explode": False,
          "description": "free-text search terms", "schema": _array(STRING)},
}

#: external references pygeoapi 0.21 writes → our local parameter
EXTERNAL_PARAMETERS = {"featureId": "featureId", "datetime": "datetime",
                       "sortby.yaml": "sortby", "q.yaml": "q"}


def _local_parameter(target: str) -> str | None:
    for suffix, name in EXTERNAL_PARAMETERS.items():
        if target.endswith(suffix):
            return f"#/components/parameters/{name}"
    return None


#: external error responses pygeoapi 0.21 writes (by their last name) → ours
EXTERNAL_RESPONSES = {"InvalidParameter": "InvalidParameter", "NotFound": "NotFound",
                      "ServerError": "ServerError"}


def _local_response(target: str) -> dict[str, Any]:
    """Our response for an external one: the errors by name; anything else (only on an
    operation :func:`_operation_responses` does not know) keeps a description only."""
    name = re.split(r"[/#]", target)[-1].removesuffix(".yaml")
    if name in EXTERNAL_RESPONSES:
        return {"$ref": f"#/components/responses/{EXTERNAL_RESPONSES[name]}"}
    LOGGER.warning("OpenAPI: response %s is not described (pygeoapi's is external)", target)
    return {"description": name}


def _localise(node: Any, *, responses: bool = True) -> Any:
    """Replace references to external documents (schemas.opengis.net, GitHub) by our local
    parameters, schemas and (with ``responses``) responses: the document must stand alone
    (closed networks, validators)."""
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith(("http://", "https://")):
            local = _local_parameter(target)
            if local:
                return {"$ref": local}
            if "/responses/" in target or "#/components/responses/" in target:
                return _local_response(target) if responses else node
            name = re.split(r"[/#]", target)[-1].removesuffix(".yaml")
            if name in ("link", "exception"):
                return ref(name)
            if name == "execute":  # replaced by the process's own request schema
                return {"type": "object", "required": ["inputs"],
                        "properties": {"inputs": OBJECT}}
            LOGGER.warning("OpenAPI: external reference left in the document: %s", target)
        return {key: _localise(value, responses=responses) for key, value in node.items()}
    if isinstance(node, list):
        return [_localise(item, responses=responses) for item in node]
    return node


# --- JSON Schema 2020-12 (process descriptions) → OpenAPI 3.0 schema objects ----------------

_SUBSCHEMA_LISTS = ("oneOf", "anyOf", "allOf")
_DROPPED = ("$schema", "$id", "contentMediaType", "contentEncoding", "examples")


def to_oas30(schema: Any) -> Any:
    """The OpenAPI 3.0 form of a JSON Schema 2020-12 fragment: type lists become ``anyOf``
    (``null`` → ``nullable``), ``const`` an ``enum``, numeric ``exclusiveMinimum`` /
    ``exclusiveMaximum`` the boolean form."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: to_oas30(sub) for name, sub in value.items()}
        elif key in ("items", "not", "additionalProperties"):
            out[key] = to_oas30(value)
        elif key in _SUBSCHEMA_LISTS:
            out[key] = [to_oas30(sub) for sub in value]
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = copy.deepcopy(value)
    types = out.get("type")
    if isinstance(types, list):
        kinds = [t for t in types if t != "null"]
        if len(kinds) < len(types):
            out["nullable"] = True
        if len(kinds) == 1:
            out["type"] = kinds[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": t} for t in kinds]
    return out


# --- the configuration (process descriptions, areas) ----------------------------------------

def _load_config() -> dict | None:
    path = os.environ.get("PYGEOAPI_CONFIG")
    if not path or not os.path.isfile(path):
        return None
    from pygeoapi.util import yaml_load

    with open(path, encoding="utf-8") as handle:
        return yaml_load(handle)


def _process_metadata(config: dict | None) -> dict[str, dict]:
    """Each configured process's description (``PROCESS_METADATA``), by id."""
    if not config:
        return {}
    from pygeoapi.plugin import load_plugin

    out = {}
    for name, resource in config.get("resources", {}).items():
        if resource.get("type") != "process":
            continue
        try:
            processor = load_plugin("process", resource["processor"])
        except Exception:  # noqa: BLE001 - the document is still written without the body
            LOGGER.exception("OpenAPI: cannot load process %s", name)
            continue
        out[name] = copy.deepcopy(processor.metadata)
    return out


def _areas(config: dict | None) -> list[str]:
    """Imagery areas (``options.area`` of the coverage/map providers), in config order."""
    areas: list[str] = []
    for resource in (config or {}).get("resources", {}).values():
        for provider in resource.get("providers", []) or []:
            area = (provider.get("options") or {}).get("area")
            if provider.get("type") in ("coverage", "map") and area and area not in areas:
                areas.append(area)
    return areas


# --- operations pygeoapi generates ----------------------------------------------------------

def _f_parameter(values: Iterable[str], default: str) -> dict[str, Any]:
    return {"name": "f", "in": "query", "required": False, "style": "form", "explode": False,
            "description": "output format", "schema": {"type": "string", "enum": list(values),
                                                       "default": default}}


def _parameter_name(param: dict, components: dict) -> str | None:
    """The name of an inline parameter, or of one referenced in ``components``."""
    target = param.get("$ref", "")
    if target.startswith("#/components/parameters/"):
        key = target.rsplit("/", 1)[-1]
        return (components.get("parameters", {}).get(key) or {}).get("name", key)
    return param.get("name")


def _replace_parameter(operation: dict, name: str, new: dict | None,
                       components: dict) -> None:
    """Replace (or drop, ``new=None``) the parameter ``name`` of ``operation``, inline or
    referenced."""
    params = []
    for param in operation.get("parameters", []):
        if _parameter_name(param, components) == name:
            if new is not None:
                params.append(new)
            continue
        params.append(param)
    operation["parameters"] = params


def _query(name: str, schema: Schema, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "style": "form",
            "explode": False, "description": description, "schema": schema, **extra}


def _collection_kinds(document: dict) -> dict[str, set[str]]:
    """Collection id → the kinds of path pygeoapi wrote for it (items, coverage, map…)."""
    kinds: dict[str, set[str]] = {}
    for path in document.get("paths", {}):
        match = re.fullmatch(r"/collections/([^/{}]+)(/.*)?", path)
        if match:
            kinds.setdefault(match.group(1), set()).add(match.group(2) or "")
    return kinds


def _is_records(operation: dict) -> bool:
    """Record collections (pygeoapi gives them ``q``): no CSV output in pygeoapi 0.21."""
    return any(p.get("$ref", "").endswith("/parameters/q") or p.get("name") == "q"
               for p in operation.get("parameters", []))


def _operation_responses(path: str, method: str, operation: dict,
                         processes: dict[str, dict]) -> dict[str, Any] | None:
    """The responses the server really gives for one of pygeoapi's operations."""
    if method == "options":
        return {"200": response("The methods allowed (`Allow` header)"), **_errors("400", "404")}
    collection = re.fullmatch(r"/collections/[^/{}]+(/.*)?", path)
    if path == "/":
        return {"200": response("Landing page", pages(ref("landingPage"))),
                **_errors("400")}
    if path == "/conformance":
        return {"200": response("Conformance classes", pages(ref("confClasses"))),
                **_errors("400")}
    if path == "/collections":
        return {"200": response("Collections", pages(ref("collections"))), **_errors("400")}
    if collection:
        tail = collection.group(1) or ""
        if tail == "":
            return {"200": response("Collection", pages(ref("collection"))),
                    **_errors("400", "404")}
        if tail == "/items":
            extra = {} if _is_records(operation) else {"text/csv": STRING}
            extra[JSON] = ref("featureCollection")  # pygeoapi 0.21 labels f=json so
            return {"200": response("Features", pages(ref("featureCollection"), GEOJSON,
                                                      extra=extra)),
                    **_errors("400", "404")}
        if tail == "/items/{featureId}":
            return {"200": response("Feature", pages(ref("feature"), GEOJSON,
                                                     extra={JSON: ref("feature")})),
                    **_errors("400", "404")}
        if tail in ("/queryables", "/schema"):
            return {"200": response("JSON Schema", pages(ref("jsonSchema"),
                                                         "application/schema+json",
                                                         jsonld=False)),
                    **_errors("400", "404")}
        if tail == "/coverage":
            return {"200": response("Coverage (CoverageJSON or GeoTIFF)",
                                    {"application/prs.coverage+json": ref("coverageJSON"),
                                     "image/tiff": BINARY}),
                    **_errors("400", "404", "413", faults=True)}
        if tail == "/map":
            return {"200": response("Map image", {"image/png": BINARY}),
                    **_errors("400", "404", "413", faults=True)}
        return None
    if path == "/processes":
        return {"200": response("Processes", pages(ref("processList"))), **_errors("400")}
    match = re.fullmatch(r"/processes/([^/{}]+)(/execution)?", path)
    if match:
        if not match.group(2):
            return {"200": response("Process description", pages(ref("process"))),
                    **_errors("400", "404")}
        return _execution_responses(processes.get(match.group(1)))
    if path == "/jobs":
        return {"200": response("Jobs", pages(ref("jobList"))), **_errors("400")}
    if path == "/jobs/{jobId}":
        if method == "delete":
            return {"200": response("The job, dismissed", {JSON: ref("statusInfo")}),
                    **_errors("400", "404")}
        return {"200": response("Job status", pages(ref("statusInfo"))),
                **_errors("400", "404")}
    if path == "/jobs/{jobId}/results":
        results = response("Job results, in the media type of the output", {"*/*": {}})
        return {"200": results, **_errors("400", "404", "413", faults=True, storage=True)}
    if path == "/openapi":
        return {"200": response("This document", {
            "application/vnd.oai.openapi+json": ref("openapi"), HTML: STRING}),
                **_errors("400")}
    if path == "/stac":
        return {"200": response("STAC catalog", {JSON: ref("stacCatalog"), HTML: STRING}),
                **_errors("400")}
    return None


#: values of a process's ``format`` input → the media type it answers with
FORMAT_MEDIA = {"geotiff": "image/tiff", "png": "image/png", "json": JSON,
                "geojson": GEOJSON, "csv": "text/csv"}


def _media_schema(media: str) -> Schema:
    if media == GEOJSON:
        return ref("featureCollection")
    if "json" in media:
        return OBJECT
    return STRING if media.startswith("text/") else BINARY


def _media_types(metadata: dict | None) -> dict[str, Schema]:
    """Media types a process answers with: its outputs' ``contentMediaType``, those its
    ``format`` input selects, and JSON (several outputs, or ``response: document``)."""
    metadata = metadata or {}
    medias = [JSON]
    for output in (metadata.get("outputs") or {}).values():
        medias.append(str((output.get("schema") or {}).get("contentMediaType") or ""))
    formats = ((metadata.get("inputs") or {}).get("format") or {}).get("schema") or {}
    medias += [FORMAT_MEDIA[f] for f in formats.get("enum", []) if f in FORMAT_MEDIA]
    variants: dict[str, Schema] = {}
    for media in medias:
        base = media.split(";")[0].strip()
        if base and not any(known.split(";")[0].strip() == base for known in variants):
            variants[media] = _media_schema(base)
    return variants


def _execution_responses(metadata: dict | None) -> dict[str, Any]:
    location = {"Location": {"description": "URL of the job's status",
                             "required": True, "schema": STRING}}
    return {
        "200": response("Results (one output in its media type; several outputs or "
                        "`response: document` as JSON)", _media_types(metadata)),
        "201": {**response("Job accepted (Prefer: respond-async): its status",
                           {JSON: ref("statusInfo")}, headers=location),
                "links": {name: {"operationId": operation,
                                 "parameters": {"jobId": "$response.body#/jobID"}}
                          for name, operation in (("GetJob", "getJob"),
                                                  ("GetJobResults", "getJobResults"),
                                                  ("DismissJob", "deleteJob"))}},
        **_errors("400", "404", "413", faults=True, storage=True),
    }


def execute_request_schema(metadata: dict, *, max_zones: int | None = None) -> Schema:
    """The execute request of a process: its inputs with their declared schemas (required
    when ``minOccurs`` ≥ 1), the outputs it offers, ``response`` and ``subscriber``."""
    properties: dict[str, Schema] = {}
    required = []
    for name, spec in (metadata.get("inputs") or {}).items():
        schema = to_oas30(spec.get("schema") or {})
        if name == "zones" and max_zones:
            schema = _limit_features(schema, max_zones)
        max_occurs = spec.get("maxOccurs", 1)
        if max_occurs != 1:
            many = {"type": "array", "items": copy.deepcopy(schema), "minItems": 1}
            if isinstance(max_occurs, int):
                many["maxItems"] = max_occurs
            schema = {"oneOf": [schema, many]}
        if spec.get("description"):
            schema.setdefault("description", _text(spec["description"]))
        properties[name] = schema
        if int(spec.get("minOccurs", 1)) >= 1:
            required.append(name)
    output_names = list((metadata.get("outputs") or {}))
    output = {"type": "object", "additionalProperties": False, "properties": {
        "transmissionMode": {"type": "string", "enum": ["value"]},
        "format": {"type": "object", "properties": {"mediaType": STRING}}}}
    return {
        "type": "object", "required": ["inputs"],
        "properties": {
            "inputs": {"type": "object", "required": required, "properties": properties},
            "outputs": {"type": "object", "additionalProperties": False,
                        "properties": {name: output for name in output_names}},
            "response": {"type": "string", "enum": ["raw", "document"]},
            "subscriber": {"type": "object", "required": ["successUri"], "properties": {
                "successUri": {"type": "string", "format": "uri"},
                "inProgressUri": {"type": "string", "format": "uri"},
                "failedUri": {"type": "string", "format": "uri"}}},
        },
    }


def _limit_features(schema: Schema, max_zones: int) -> Schema:
    """``maxItems`` on the ``features`` of inline FeatureCollections: the server refuses more
    than ``SENTINELLE_MAX_ZONES`` zones (413)."""
    schema = copy.deepcopy(schema)
    for option in schema.get("oneOf", [schema]):
        features = option.get("properties", {}).get("features")
        if isinstance(features, dict) and features.get("type") == "array":
            features.setdefault("maxItems", max_zones)
    return schema


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("en") or next(iter(value.values()), ""))
    return str(value)


def _complete_operation(path: str, method: str, operation: dict,
                        processes: dict[str, dict], components: dict) -> None:
    """Parameters and request bodies pygeoapi leaves out or gets wrong."""
    from sentinelle.rendering import MAX_MAP_SIDE

    if re.fullmatch(r"/collections/[^/{}]+/coverage", path):
        _replace_parameter(operation, "f", _f_parameter(["json", "GTiff"], "json"),
                           components)
        operation["parameters"] += [
            {"$ref": "#/components/parameters/datetime"},
            _query("properties", _array(STRING, minItems=1),
                   "fields (bands or index) to return, comma-separated"),
            _query("subset", STRING, "axis subsets, e.g. `x(600000:601000),y(5330000:"
                                     "5331000)` (comma-separated axes)")]
    elif re.fullmatch(r"/collections/[^/{}]+/map", path):
        # pygeoapi 0.21 declares an EPSG integer, which its map API cannot read
        _replace_parameter(operation, "bbox-crs", _query(
            "bbox-crs", {"type": "string", "format": "uri"},
            "CRS of bbox as a URI, e.g. http://www.opengis.net/def/crs/EPSG/0/3857 "
            "(default: EPSG:4326 read as longitude, latitude)"), components)
        for name, description in (("width", "image width (pixels)"),
                                  ("height", "image height (pixels)")):
            _replace_parameter(operation, name, _query(
                name, {"type": "integer", "minimum": 1, "maximum": MAX_MAP_SIDE},
                description), components)
    elif re.fullmatch(r"/collections/[^/{}]+/items", path) and _is_records(operation):
        _replace_parameter(operation, "f", _f_parameter(["json", "html", "jsonld"], "json"),
                           components)
    elif path == "/jobs" and method == "get":
        operation["parameters"] = [
            {"$ref": "#/components/parameters/f"},
            _query("status", _array({"type": "string", "enum": JOB_STATUSES}, minItems=1),
                   "only jobs in these states (comma-separated)"),
            _query("processID", _array(STRING, minItems=1),
                   "only jobs of these processes (comma-separated)"),
            _query("limit", {"type": "integer", "minimum": 1}, "jobs per page"),
            _query("offset", {"type": "integer", "minimum": 0}, "jobs skipped"),
        ]
    match = re.fullmatch(r"/processes/([^/{}]+)/execution", path)
    if match and match.group(1) in processes:
        from sentinelle.settings import Limits

        body = operation.setdefault("requestBody", {"required": True})
        example = (body.get("content", {}).get(JSON) or {}).get("example")
        media = {"schema": execute_request_schema(processes[match.group(1)],
                                                  max_zones=Limits.from_env().max_zones)}
        if example is not None:
            media["example"] = example
        body["content"] = {JSON: media}


# --- our own routes -------------------------------------------------------------------------

def _path_param(name: str, description: str, schema: Schema | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string", "pattern": "^[^/]+$"}}


def _plain_errors(*codes: str) -> dict[str, Any]:
    """Errors of our own routes: plain text from the route, or the exception JSON of the
    request guards (:mod:`sentinelle.web.guards`) that run before every route."""
    messages = {"400": "Invalid request (the message says why)",
                "404": "Not found (the message names what exists)"}
    return {code: response(messages[code], {TEXT: STRING, JSON: ref("exception")})
            for code in ("400", *codes)}


def _wms_operation(config: dict | None) -> dict[str, Any]:
    """``GET /wms``: WMS 1.3.0 key-value parameters (names are case-insensitive)."""
    from sentinelle.analysis.indices import INDICES
    from sentinelle.ows.params import INFO_FORMATS, MAP_FORMATS, MAX_LAYERS
    from sentinelle.rendering import MAX_MAP_SIDE

    layers = [f"{area}:{name}" for area in _areas(config) for name in
              ("OI.OrthoimageCoverage", *INDICES, "LC.LandCoverRaster", "NDVI-change")]
    layer = {"type": "string", "enum": layers} if layers else STRING
    size = {"type": "integer", "minimum": 1, "maximum": MAX_MAP_SIDE}
    params = [
        _query("SERVICE", {"type": "string", "enum": ["WMS"]}, "service type"),
        {**_query("REQUEST", {"type": "string", "enum": ["GetCapabilities", "GetMap",
                                                         "GetFeatureInfo",
                                                         "GetLegendGraphic"]},
                  "operation"), "required": True},
        _query("VERSION", {"type": "string", "enum": ["1.3.0"]}, "protocol version"),
        _query("LAYERS", _array(layer, minItems=1, maxItems=MAX_LAYERS),
               "layers, comma-separated (`<area>:<product>`)"),
        _query("STYLES", STRING, "styles, comma-separated (empty: defaults)"),
        _query("CRS", STRING, "CRS of BBOX, e.g. EPSG:3857, CRS:84"),
        _query("BBOX", _array({"type": "number"}, minItems=4, maxItems=4),
               "minx,miny,maxx,maxy in the CRS's axis order"),
        _query("WIDTH", size, "image width (pixels)"),
        _query("HEIGHT", size, "image height (pixels)"),
        _query("FORMAT", {"type": "string", "enum": list(MAP_FORMATS)}, "image format"),
        _query("TRANSPARENT", {"type": "string", "enum": ["TRUE", "FALSE"]}, "transparency"),
        _query("BGCOLOR", {"type": "string", "pattern": "^0x[0-9A-Fa-f]{6}$"},
               "background colour"),
        _query("TIME", STRING, "a date or an interval (composite)"),
        _query("QUERY_LAYERS", _array(layer, minItems=1, maxItems=MAX_LAYERS),
               "GetFeatureInfo: layers queried"),
        _query("INFO_FORMAT", {"type": "string", "enum": list(INFO_FORMATS)},
               "GetFeatureInfo: answer format"),
        _query("I", {"type": "integer", "minimum": 0}, "GetFeatureInfo: column"),
        _query("J", {"type": "integer", "minimum": 0}, "GetFeatureInfo: row"),
        _query("LAYER", layer, "GetLegendGraphic: layer"),
        _query("STYLE", STRING, "GetLegendGraphic: style"),
        _query("LANGUAGE", {"type": "string", "enum": ["fre", "eng"]},
               "language of titles and messages"),
    ]
    report = {XML: STRING}
    return {"get": {
        "summary": "WMS 1.3.0 (GetCapabilities, GetMap, GetFeatureInfo, GetLegendGraphic)",
        "operationId": "getWms", "tags": ["wms"], "parameters": params,
        "responses": {
            "200": response("Capabilities, a map, a legend or feature information",
                            {XML: STRING, "image/png": BINARY, "image/jpeg": BINARY,
                             JSON: ref("featureCollection"), HTML: STRING, TEXT: STRING}),
            "400": response("Service exception (invalid parameter)", report),
            "404": response("Service exception (no such data)", report),
            "500": response("Service exception (server error)", report),
            "502": response("Service exception (data source unreadable)", report),
            "503": response("Service exception (upstream unavailable)", report),
            "504": response("Service exception (upstream too slow)", report),
        }}}


def _own_paths(config: dict | None, kinds: dict[str, set[str]]) -> dict[str, Any]:
    from sentinelle.web.vendor import ASSETS

    record = _path_param("recordId", "collection or scene identifier")
    paths: dict[str, Any] = {
        "/wms": _wms_operation(config),
        "/metadata/{recordId}.xml": {"get": {
            "summary": "ISO 19139 / INSPIRE metadata record", "operationId": "getIsoRecord",
            "tags": ["metadata"], "parameters": [record],
            "responses": {"200": response("ISO 19139 record", {"application/xml": STRING}),
                          **_plain_errors("404")}}},
        "/metadata/{recordId}.jsonld": {"get": {
            "summary": "DCAT (GeoDCAT-AP) record as JSON-LD", "operationId": "getDcatRecord",
            "tags": ["metadata"], "parameters": [record],
            "responses": {"200": response("DCAT record", {JSONLD: OBJECT}),
                          **_plain_errors("404")}}},
        "/download/{collectionId}.gpkg": {"get": {
            "summary": "A whole vector dataset as a GeoPackage", "operationId": "downloadGpkg",
            "tags": ["metadata"],
            "parameters": [_path_param("collectionId", "feature collection identifier")],
            "responses": {"200": response("GeoPackage",
                                          {"application/geopackage+sqlite3": BINARY}),
                          **_plain_errors("404")}}},
        "/licences/{licenceId}": {"get": {
            "summary": "Summary of a licence, linking to its official text",
            "operationId": "getLicence", "tags": ["metadata"],
            "parameters": [_path_param("licenceId", "licence identifier"),
                           _query("lang", {"type": "string", "enum": ["fr", "en"]},
                                  "language")],
            "responses": {"200": response("Licence page", {HTML: STRING}),
                          **_plain_errors("404")}}},
        "/dashboard": {"get": {
            "summary": "Dashboard for local authorities", "operationId": "getDashboard",
            "tags": ["dashboard"],
            "responses": {"200": response("Dashboard page", {HTML: STRING})}}},
        "/vendor/{package}/{file}": {"get": {
            "summary": "Front-end assets (npm packages pinned in package-lock.json)",
            "operationId": "getVendorAsset", "tags": ["server"],
            "parameters": [
                _path_param("package", "npm package", {"type": "string",
                                                       "enum": sorted(ASSETS)}),
                _path_param("file", "file of the package",
                            {"type": "string", "enum": sorted({f for files in
                                                               ASSETS.values()
                                                               for f in files})})],
            "responses": {"200": response("The file", {"*/*": {}}),
                          **_plain_errors("404")}}},
        "/TileMatrixSets": {"get": {
            "summary": "Tile matrix sets", "operationId": "getTileMatrixSets",
            "tags": ["server"], "parameters": [{"$ref": "#/components/parameters/f"}],
            "responses": {"200": response("Tile matrix sets", pages(ref("tileMatrixSets"))),
                          **_errors("400")}}},
        "/TileMatrixSets/{tileMatrixSetId}": {"get": {
            "summary": "A tile matrix set", "operationId": "getTileMatrixSet",
            "tags": ["server"],
            "parameters": [_path_param("tileMatrixSetId", "tile matrix set identifier"),
                           {"$ref": "#/components/parameters/f"}],
            "responses": {"200": response("Tile matrix set", pages(ref("tileMatrixSet"))),
                          **_errors("400", "404")}}},
    }
    for collection, tails in sorted(kinds.items()):
        if "/map" not in tails:
            continue
        paths[f"/collections/{collection}/map/legend"] = {"get": {
            "summary": f"Legend of the {collection} map", "tags": [collection],
            "operationId": f"get{collection.capitalize()}MapLegend",
            "parameters": [_f_parameter(["png"], "png")],
            "responses": {"200": response("Legend", {"image/png": BINARY}),
                          **_errors("400", "404")}}}
    return paths


# --- entry point ----------------------------------------------------------------------------

def finalize(document: dict[str, Any], config: dict | None = None) -> dict[str, Any]:
    """Return the generated document completed with what pygeoapi leaves out.

    ``config`` is the pygeoapi configuration (default: the file ``PYGEOAPI_CONFIG`` names);
    without it, process bodies and WMS layer names stay generic.
    """
    # external responses are rewritten below, operation by operation; any left are then
    # localised by name
    document = _localise(copy.deepcopy(document), responses=False)
    if config is None:
        config = _load_config()
    processes = _process_metadata(config)
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(copy.deepcopy(SCHEMAS))
    components.setdefault("parameters", {}).update(copy.deepcopy(PARAMETERS))
    components.setdefault("responses", {}).update(copy.deepcopy(RESPONSES))
    # pygeoapi's generic 200 and default responses are no longer used by any operation
    for name in ("200", "default"):
        components["responses"].pop(name, None)
    kinds = _collection_kinds(document)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _complete_operation(path, method, operation, processes, components)
            responses = _operation_responses(path, method, operation, processes)
            if responses is not None:
                operation["responses"] = responses
            if "{" in path and method != "options":  # the guards check every path
                operation["responses"].setdefault(
                    "400", {"$ref": "#/components/responses/InvalidParameter"})
    document = _localise(document)
    document["paths"].update(_own_paths(config, kinds))
    tags = {tag.get("name") for tag in document.setdefault("tags", [])}
    for name, description in (("wms", "WMS 1.3.0 view service"),
                              ("metadata", "ISO 19139 / DCAT records, downloads, licences"),
                              ("dashboard", "Web dashboard")):
        if name not in tags:
            document["tags"].append({"name": name, "description": description})
    from sentinelle.web.access import declare_security  # security schemes (access control)

    return declare_security(document)
