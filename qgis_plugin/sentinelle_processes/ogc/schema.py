"""From a process description (JSON schemas) to processing parameters, and back to inputs.

:func:`algorithm_spec` turns ``GET /processes/{id}`` into plain :class:`Param` and
:class:`OutputSpec` objects that the QGIS side turns into ``QgsProcessingParameter…`` one to
one; :meth:`AlgorithmSpec.encode` turns the plain values the user gave back into the
``inputs`` of an execute request.  No QGIS here, so every rule is unit-tested.

How schemas are read (any OGC API – Processes 1.0 server; Sentinelle's forms when present):

* an array of 4 (or 6) numbers, or an OGC bbox object (``{"bbox": …, "crs": …}``) → an
  extent, sent in CRS84;
* a GeoJSON geometry or Feature → a vector layer, dissolved into one geometry; a GeoJSON
  FeatureCollection → a vector layer sent whole, with an optional identifier field (both in
  CRS84, reprojected by QGIS);
* a served-feature reference (an object with ``collection`` and ``id`` or ``filter``) → a
  choice among the server's feature collections and the feature id or a CQL2 filter;
* ``oneOf``/``anyOf`` → every form it offers, the first one given is sent;
* ``enum`` → a choice (several for an array of enums); numbers with their bounds; booleans;
* ``format: date``/``date-time`` → a date; a date-like string (``datetime``, ``before``…, or
  described as RFC 3339 / ISO 8601) → a start date and an optional end (an interval);
* ``crs`` inputs → a CRS; other arrays → comma-separated values; other objects → JSON text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .i18n import text

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

MEDIA_EXTENSIONS = {
    "image/tiff": "tif", "image/geotiff": "tif", "application/geo+json": "geojson",
    "application/vnd.geo+json": "geojson", "text/csv": "csv", "application/json": "json",
    "image/png": "png", "image/jpeg": "jpg", "application/zip": "zip", "text/plain": "txt",
    "text/html": "html", "application/xml": "xml", "text/xml": "xml",
    "application/x-netcdf": "nc", "application/netcdf": "nc",
    "application/geopackage+sqlite3": "gpkg", "application/pdf": "pdf",
}
#: names of string inputs that hold a date or a period even when their schema does not say so
TEMPORAL_NAMES = {"datetime", "date", "time", "before", "after", "period", "interval", "start",
                  "end", "start_date", "end_date", "date_start", "date_end"}
TEMPORAL_WORDS = ("rfc 3339", "rfc3339", "iso 8601", "iso8601")


class InputError(ValueError):
    """A value the user gave cannot be sent; the message names the parameter and the fix."""


@dataclass
class Param:
    """One processing parameter, described without QGIS.

    ``kind``: ``extent``, ``layer`` (``geometry``: ``geometry`` dissolves it into one,
    ``feature`` one Feature, ``features`` the whole collection), ``field`` (of ``parent``),
    ``enum`` (``options``, ``multiple``), ``number`` / ``integer`` (bounds), ``boolean``,
    ``date`` / ``datetime``, ``crs``, ``text`` (``multiple``: comma-separated), ``json``.
    """

    name: str
    kind: str
    title: str
    help: str = ""
    optional: bool = True
    default: Any = None
    options: list[str] = field(default_factory=list)
    multiple: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    geometry: str = ""
    parent: str = ""
    item_type: str = "string"


@dataclass
class Form:
    """One way of giving an input (a bbox, a layer, a served collection…) and its params."""

    kind: str
    params: list[Param]
    style: str = ""  # how the value is written: "array"/"ogc" bbox, "id"/"filter" reference…
    schema: dict = field(default_factory=dict)


@dataclass
class InputSpec:
    """One process input, its forms (exactly one may be given) and how to encode it."""

    input_id: str
    title: str
    description: str
    required: bool
    forms: list[Form]

    @property
    def params(self) -> list[Param]:
        return [p for form in self.forms for p in form.params]

    def encode(self, values: dict[str, Any], lang: str = "fr") -> Any:
        """The JSON value for the execute request, or :data:`MISSING` when not given."""
        given = [form for form in self.forms if _given(form, values)]
        if not given:
            if self.required:
                forms = text("or", lang).join(_form_label(f, lang) for f in self.forms)
                raise InputError(text("missing", lang, title=self.title, forms=forms))
            return MISSING
        if len(given) > 1:  # an extent and a layer: which one was meant? say so, don't guess
            forms = text("or", lang).join(_form_label(f, lang) for f in given)
            raise InputError(text("one_of", lang, forms=forms))
        return _encode_form(self, given[0], values, lang)


@dataclass
class OutputSpec:
    """One process output: ``kind`` ``raster``, ``vector``, ``table``, ``json`` or ``file``,
    the declared ``media_type`` and the file ``extension`` it is saved with."""

    output_id: str
    name: str
    title: str
    description: str
    kind: str
    media_type: str
    extension: str
    links: list[dict] = field(default_factory=list)


@dataclass
class AlgorithmSpec:
    """Everything the QGIS side needs to build one algorithm for one process."""

    process_id: str
    title: str
    description: str
    inputs: list[InputSpec]
    outputs: list[OutputSpec]
    asynchronous: bool
    synchronous: bool
    keywords: list[str] = field(default_factory=list)
    version: str = ""
    lang: str = "fr"

    @property
    def params(self) -> list[Param]:
        return [p for spec in self.inputs for p in spec.params]

    def encode(self, values: dict[str, Any], lang: str | None = None) -> dict:
        """The execute request's ``inputs`` from the parameters' plain values (messages in
        ``lang``, by default the description's language)."""
        lang = lang or self.lang
        inputs = {}
        for spec in self.inputs:
            value = spec.encode(values, lang)
            if value is not MISSING:
                inputs[spec.input_id] = value
        return inputs

    def output_request(self, wanted: list[str]) -> dict | None:
        """The ``outputs`` member: ``None`` (everything, the server's default) when every
        output is wanted, else one entry per wanted output."""
        ids = [o.output_id for o in self.outputs]
        if not wanted or set(wanted) >= set(ids):
            return None
        return {output_id: {} for output_id in ids if output_id in wanted}


class _Missing:
    def __repr__(self):
        return "MISSING"


MISSING = _Missing()


# --- reading a description ----------------------------------------------------------------

def param_name(raw: str) -> str:
    """A QGIS parameter name for an input or output id (letters, digits, ``_``)."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", raw)
    return name if name and not name[0].isdigit() else f"_{name}"


def algorithm_spec(description: dict, *, collections: list[dict] | None = None,
                   lang: str = "fr") -> AlgorithmSpec:
    """The algorithm for one process description (``collections``: the server's feature
    collections, for served-feature inputs)."""
    collections = collections or []
    taken: set[str] = set()
    inputs = []
    for input_id, definition in (description.get("inputs") or {}).items():
        spec = input_spec(input_id, definition, collections=collections, lang=lang)
        for param in spec.params:
            while param.name in taken:
                param.name += "_"
            taken.add(param.name)
        inputs.append(spec)
    for spec in inputs:  # field parameters follow their layer's (possibly renamed) name
        for form in spec.forms:
            for param in form.params[1:]:
                if param.parent:
                    param.parent = form.params[0].name
    outputs = []
    for output_id, definition in (description.get("outputs") or {}).items():
        output = output_spec(output_id, definition)
        while output.name in taken or f"{output.name}_file" in taken:
            output.name += "_"
        taken.update({output.name, f"{output.name}_file", f"{output.name}_joined"})
        outputs.append(output)
    control = description.get("jobControlOptions") or ["sync-execute"]
    return AlgorithmSpec(
        process_id=description["id"], title=_text(description.get("title")) or description["id"],
        description=_text(description.get("description")), inputs=inputs, outputs=outputs,
        asynchronous="async-execute" in control, synchronous="sync-execute" in control,
        keywords=[k for k in description.get("keywords") or [] if isinstance(k, str)],
        version=str(description.get("version") or ""), lang=lang)


def input_spec(input_id: str, definition: dict, *, collections: list[dict] | None = None,
               lang: str = "fr") -> InputSpec:
    """The forms and parameters of one input."""
    schema = definition.get("schema") or {}
    title = _text(definition.get("title")) or input_id
    description = _text(definition.get("description"))
    required = int(definition.get("minOccurs", 1) or 0) > 0
    max_occurs = definition.get("maxOccurs", 1)
    repeated = max_occurs == "unbounded" or (isinstance(max_occurs, int) and max_occurs > 1)
    alternatives = _alternatives(schema)
    name = param_name(input_id)
    forms: list[Form] = []
    for alternative in alternatives:
        form = _form(input_id, name, title, description, alternative, collections or [], lang,
                     repeated=repeated)
        if form is None or any(f.kind == form.kind for f in forms):
            continue  # e.g. a geometry and a Feature form: one layer parameter serves both
        forms.append(form)
    if not forms:
        forms = [Form("json", [Param(name, "json", text("json", lang, title=title), description)],
                      schema=schema)]
    _name_forms(forms, name)
    single = len(forms) == 1
    for form in forms:
        for param in form.params:
            # a parameter is mandatory only when it is the input's only way and is its core
            param.optional = not (required and single and param is form.params[0]
                                  and form.kind not in ("served",))
            if not param.help:
                param.help = description
    return InputSpec(input_id, title, description, required, forms)


def _name_forms(forms: list[Form], name: str) -> None:
    """The main form keeps the input's name; the others get a suffix (``area_layer``)."""
    main = next((f for f in forms if f.kind not in ("layer", "served")), forms[0])
    for form in forms:
        first = form.params[0]
        if form is not main and first.name == name:
            first.name = f"{name}_{form.kind}"
        for param in form.params[1:]:
            if param.parent:
                param.parent = first.name


def output_spec(output_id: str, definition: dict) -> OutputSpec:
    """Where an output goes, from its declared media type."""
    schema = definition.get("schema") or {}
    media = _media_type(schema)
    return OutputSpec(
        output_id=output_id, name=param_name(output_id),
        title=_text(definition.get("title")) or output_id,
        description=_text(definition.get("description")), kind=media_kind(media),
        media_type=media, extension=extension(media),
        links=[link for link in definition.get("links") or [] if isinstance(link, dict)])


def media_kind(media: str) -> str:
    """``raster``, ``vector``, ``table``, ``json`` or ``file`` for a media type."""
    base = (media or "").split(";")[0].strip().lower()
    if base in ("image/tiff", "image/geotiff", "application/x-geotiff"):
        return "raster"
    if base in ("application/geo+json", "application/vnd.geo+json"):
        return "vector"
    if base == "text/csv":
        return "table"
    if base == "application/json" or base.endswith("+json"):
        return "json"
    return "file"


def extension(media: str) -> str:
    base = (media or "").split(";")[0].strip().lower()
    return MEDIA_EXTENSIONS.get(base, "bin")


def _media_type(schema: dict) -> str:
    for candidate in [schema, *(schema.get("oneOf") or []), *(schema.get("anyOf") or [])]:
        if isinstance(candidate, dict) and candidate.get("contentMediaType"):
            return str(candidate["contentMediaType"])
    fmt = str(schema.get("format") or "").lower()
    if fmt in ("geojson-feature-collection", "geojson-feature", "geojson-geometry", "geojson"):
        return "application/geo+json"
    if fmt in ("binary", "byte"):
        return "application/octet-stream"
    return "application/json"


# --- schema forms ----------------------------------------------------------------------------

def _alternatives(schema: dict) -> list[dict]:
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            found = []
            for alternative in schema[key]:
                found.extend(_alternatives(alternative) if isinstance(alternative, dict) else [])
            return found
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        return _alternatives(schema["allOf"][0])
    return [schema]


def _types(schema: dict) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return {str(k) for k in kind}
    if kind:
        return {str(kind)}
    if "enum" in schema:
        return {"string"}
    if "properties" in schema or "required" in schema:
        return {"object"}
    return set()


def _is_bbox(schema: dict) -> str:
    """``array`` or ``ogc`` when the schema is a bounding box, else ``""``."""
    items = schema.get("items") or {}
    if _types(schema) == {"array"} and _types(items) & {"number", "integer"} \
            and schema.get("minItems") == 4 and schema.get("maxItems") in (4, 6):
        return "array"
    props = schema.get("properties") or {}
    if str(schema.get("format", "")).lower() == "ogc-bbox" or (
            "bbox" in props and "bbox" in (schema.get("required") or [])
            and set(props) <= {"bbox", "crs"}):
        return "ogc"
    return ""


def _geojson_form(schema: dict) -> str:
    """``geometry``, ``feature`` or ``features`` for a GeoJSON schema, else ``""``."""
    fmt = str(schema.get("format", "")).lower()
    media = str(schema.get("contentMediaType", "")).lower()
    ref = str(schema.get("$ref", "")).lower()
    props = schema.get("properties") or {}
    kind = props.get("type") or {}
    const = kind.get("const") or (kind.get("enum") or [None])[0]
    if fmt == "geojson-feature-collection" or const == "FeatureCollection" \
            or "features" in props or ref.endswith("featurecollection.json") \
            or "featurecollection" in ref:
        return "features"
    if fmt == "geojson-feature" or const == "Feature" or ref.endswith("feature.json"):
        return "feature"
    if fmt == "geojson-geometry" or "coordinates" in props or "geometry" in ref \
            or media in ("application/geo+json", "application/vnd.geo+json"):
        return "geometry"
    return ""


def _served(schema: dict) -> str:
    """``id`` or ``filter`` for a served-feature reference (Sentinelle's form), else ``""``."""
    props = schema.get("properties") or {}
    if "collection" not in props or "collection" not in (schema.get("required") or []):
        return ""
    if "id" in props:
        return "id"
    return "filter"


def _is_temporal(input_id: str, schema: dict, description: str) -> str:
    fmt = str(schema.get("format", "")).lower()
    if fmt == "date":
        return "date"
    if fmt == "date-time":
        return "datetime"
    if fmt in ("interval", "date-interval", "datetime-interval"):
        return "interval"
    if _types(schema) != {"string"} or "enum" in schema:
        return ""
    words = description.lower()
    if input_id.lower() in TEMPORAL_NAMES or any(w in words for w in TEMPORAL_WORDS):
        return "interval"
    return ""


def _is_crs(input_id: str, schema: dict) -> bool:
    lowered = input_id.lower()
    return (lowered in ("crs", "srs", "output_crs", "outputcrs") or lowered.endswith("_crs")) \
        and bool(_types(schema) & {"string", "integer"}) and "enum" not in schema


def _bounds(param: Param, schema: dict) -> Param:
    for key, attr in (("minimum", "minimum"), ("maximum", "maximum")):
        if isinstance(schema.get(key), (int, float)):
            setattr(param, attr, float(schema[key]))
    for key, attr in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = schema.get(key)
        if isinstance(value, bool):  # OpenAPI 3.0: a flag on minimum / maximum
            setattr(param, f"exclusive_{attr}", value)
        elif isinstance(value, (int, float)):
            setattr(param, attr, float(value))
            setattr(param, f"exclusive_{attr}", True)
    return param


def _form(input_id: str, name: str, title: str, description: str, schema: dict,
          collections: list[dict], lang: str, *, repeated: bool) -> Form | None:
    default = schema.get("default")
    bbox = _is_bbox(schema)
    if bbox:
        return Form("extent", [Param(name, "extent", text("extent", lang, title=title),
                                     description)], style=bbox, schema=schema)
    geojson = _geojson_form(schema)
    if geojson:
        layer = Param(name, "layer", text("layer", lang, title=title), description,
                      geometry=geojson)
        params = [layer]
        if geojson == "features":
            params.append(Param(f"{name}_id_field", "field", text("id_field", lang, title=title),
                                parent=layer.name))
        return Form("layer", params, style=geojson, schema=schema)
    served = _served(schema)
    if served:
        ids = [str(c["id"]) for c in collections]
        if not ids:
            return None
        listing = "; ".join(f"{c['id']} — {_text(c.get('title'))}" for c in collections)
        chooser = Param(f"{name}_collection", "enum", text("collection", lang, title=title),
                        text("collections_help", lang, items=listing), options=ids)
        key = Param(f"{name}_{'feature' if served == 'id' else 'filter'}", "text",
                    text("feature_id" if served == "id" else "filter", lang, title=title))
        return Form("served", [chooser, key], style=served, schema=schema)
    temporal = _is_temporal(input_id, schema, description)
    if temporal == "interval":
        return Form("interval", [
            Param(name, "date", text("start", lang, title=title), description),
            Param(f"{name}_end", "date", text("end", lang, title=title), description)],
            schema=schema)
    if temporal:
        return Form(temporal, [Param(name, temporal, title, description, default=default)],
                    schema=schema)
    if _is_crs(input_id, schema):
        return Form("crs", [Param(name, "crs", title, description, default=default)],
                    schema=schema)
    types = _types(schema)
    if "array" in types or repeated:
        items = schema.get("items") or {} if "array" in types else schema
        if "enum" in items:
            return Form("enum", [Param(name, "enum", title, description, default=default,
                                       options=[str(v) for v in items["enum"]],
                                       multiple=True, item_type=_item_type(items))],
                        style="array", schema=schema)
        item_type = _item_type(items)
        if item_type in ("object", "array"):
            return Form("json", [Param(name, "json", text("json", lang, title=title),
                                       description, default=_json_default(default))],
                        schema=schema)
        return Form("list", [Param(name, "text", text("list", lang, title=title), description,
                                   default=", ".join(map(str, default))
                                   if isinstance(default, list) else default,
                                   multiple=True, item_type=item_type)], schema=schema)
    if "enum" in schema:
        return Form("enum", [Param(name, "enum", title, description, default=default,
                                   options=[str(v) for v in schema["enum"]],
                                   item_type=_item_type(schema))], schema=schema)
    if types & {"number", "integer"} and not types & {"string", "object", "array"}:
        kind = "number" if "number" in types else "integer"
        return Form(kind, [_bounds(Param(name, kind, title, description, default=default),
                                   schema)], schema=schema)
    if types == {"boolean"}:
        return Form("boolean", [Param(name, "boolean", title, description,
                                      default=bool(default) if default is not None else None)],
                    schema=schema)
    if types & {"string", "number", "integer"} and not types & {"object", "array"}:
        return Form("text", [Param(name, "text", title, description, default=default,
                                   item_type="string" if "string" in types else "number")],
                    schema=schema)
    return Form("json", [Param(name, "json", text("json", lang, title=title), description,
                               default=_json_default(default))], schema=schema)


def _item_type(schema: dict) -> str:
    types = _types(schema)
    for kind in ("integer", "number", "boolean", "object", "array"):
        if types == {kind}:
            return kind
    if "enum" in schema and schema["enum"] and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in schema["enum"]):
        return "number"
    return "string"


def _json_default(default: Any) -> Any:
    return None if default is None else json.dumps(default, ensure_ascii=False)


def _text(value: Any) -> str:
    """A title/description: a plain string, or the first of a ``{lang: text}`` mapping."""
    if isinstance(value, dict):
        value = next(iter(value.values()), "")
    return str(value or "")


# --- encoding values ------------------------------------------------------------------------

def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def _given(form: Form, values: dict) -> bool:
    if form.kind == "served":
        return not _empty(values.get(form.params[0].name))
    if form.kind == "interval":
        return any(not _empty(values.get(p.name)) for p in form.params)
    return not _empty(values.get(form.params[0].name))


def _form_label(form: Form, lang: str) -> str:
    return form.params[0].title


def _encode_form(spec: InputSpec, form: Form, values: dict, lang: str) -> Any:
    first = form.params[0]
    value = values.get(first.name)
    if form.kind == "extent":
        bbox = [float(v) for v in value]
        return bbox if form.style == "array" else {"bbox": bbox, "crs": CRS84}
    if form.kind == "layer":
        if not value or not value.get("features", {}).get("features"):
            raise InputError(text("empty_layer", lang, title=spec.title))
        if form.style == "features":
            return value["features"]
        if form.style == "feature":
            return {"type": "Feature", "properties": {}, "geometry": value["geometry"]}
        return value["geometry"]
    if form.kind == "served":
        key = form.params[1]
        reference = {"collection": str(value)}
        detail = values.get(key.name)
        if not _empty(detail):
            reference["id" if form.style == "id" else "filter"] = str(detail).strip()
        elif form.style == "id":
            raise InputError(text("missing", lang, title=spec.title, forms=key.title))
        return reference
    if form.kind == "interval":
        start, end = (values.get(p.name) for p in form.params)
        if _empty(start):
            if _empty(end):
                return MISSING
            return f"../{end}"
        return str(start) if _empty(end) or str(end) == str(start) else f"{start}/{end}"
    if form.kind in ("date", "datetime", "crs"):
        return str(value)
    if form.kind == "enum":
        if first.multiple:
            items = value if isinstance(value, (list, tuple)) else [value]
            return [_convert(first, v, lang) for v in items]
        return _convert(first, value, lang)
    if form.kind in ("number", "integer"):
        return _check_bounds(first, _number(first, value, lang), lang)
    if form.kind == "boolean":
        return bool(value)
    if form.kind == "list":
        items = value if isinstance(value, (list, tuple)) else \
            [v.strip() for v in str(value).split(",") if v.strip()]
        return [_convert(first, v, lang) for v in items]
    if form.kind == "text":
        return _convert(first, value, lang) if first.item_type != "string" else str(value)
    if form.kind == "json":
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as err:
            raise InputError(text("bad_json", lang, title=first.title, error=err)) from err
    return value


def _number(param: Param, value: Any, lang: str) -> float | int:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(text("not_number", lang, title=param.title, value=value)) from err
    if param.kind == "integer" or param.item_type == "integer":
        return int(round(number))
    return int(number) if number.is_integer() and isinstance(value, int) else number


def _convert(param: Param, value: Any, lang: str) -> Any:
    if param.item_type in ("number", "integer"):
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise InputError(text("not_number", lang, title=param.title, value=value)) from err
        return int(number) if param.item_type == "integer" or number.is_integer() and \
            str(value).strip().lstrip("-").isdigit() else number
    if param.item_type == "boolean":
        return str(value).strip().lower() in ("1", "true", "yes", "oui", "vrai")
    return str(value)


def _check_bounds(param: Param, number: float, lang: str) -> float:
    if math.isnan(number):
        raise InputError(text("not_number", lang, title=param.title, value=number))
    if param.minimum is not None and (number < param.minimum or (
            param.exclusive_minimum and number == param.minimum)):
        op = ">" if param.exclusive_minimum else "≥"
        raise InputError(text("too_small", lang, title=param.title, op=op,
                              bound=_plain(param.minimum), value=_plain(number)))
    if param.maximum is not None and (number > param.maximum or (
            param.exclusive_maximum and number == param.maximum)):
        op = "<" if param.exclusive_maximum else "≤"
        raise InputError(text("too_large", lang, title=param.title, op=op,
                              bound=_plain(param.maximum), value=_plain(number)))
    return number


def _plain(number: float) -> str:
    return f"{number:g}"
