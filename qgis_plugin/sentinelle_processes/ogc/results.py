"""Decoding what a server returns for an execution into one payload per output.

Servers answer in several shapes, all handled here:

* one output, raw: the body *is* the output, with its own ``Content-Type`` (a GeoTIFF, CSV…);
* several outputs: a JSON object ``{output id: value}`` (OGC results document), where a value
  is inline JSON, a qualified value ``{"value", "mediaType"/"type", "encoding": "base64"}`` or
  a reference ``{"href", "type"}`` fetched with the same client;
* pygeoapi's ``response: document`` wrapping ``{"outputs": [{"id", "value", …}]}``;
* pygeoapi's own examples (``hello-world``) answer one JSON output as ``{"id", "value"}``:
  that is the output's raw value and is kept whole.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from .client import Response
from .schema import OutputSpec, extension, media_kind

JSON = "application/json"


@dataclass
class Payload:
    """One output as received: its id, media type and bytes."""

    output_id: str
    media_type: str
    content: bytes

    @property
    def kind(self) -> str:
        return media_kind(self.media_type)

    @property
    def extension(self) -> str:
        return extension(self.media_type)

    def json(self) -> Any:
        return json.loads(self.content.decode("utf-8"))

    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def payloads(response: Response, outputs: list[OutputSpec], wanted: list[str],
             fetch=None) -> dict[str, Payload]:
    """One :class:`Payload` per output present in ``response`` (``wanted``: the output ids
    asked for; ``fetch(href) -> Response`` resolves outputs given by reference)."""
    declared = {o.output_id: o for o in outputs}
    wanted = [w for w in wanted if w in declared] or list(declared)
    media = response.media_type or JSON
    if media_kind(media) == "json" and media != "application/geo+json":
        try:
            doc = json.loads(response.body.decode("utf-8") or "null")
        except ValueError:
            doc = None
        document = _document(doc, declared, wanted)
        if document is not None:
            return {key: _payload(key, value, declared[key], fetch)
                    for key, value in document.items()}
    key = wanted[0]
    return {key: Payload(key, media, response.body)}


def _document(doc: Any, declared: dict, wanted: list[str]) -> dict | None:
    """``{output id: value}`` when ``doc`` is a results document, else ``None`` (raw)."""
    if isinstance(doc, dict) and isinstance(doc.get("outputs"), list):  # pygeoapi "document"
        found = {item.get("id"): item for item in doc["outputs"]
                 if isinstance(item, dict) and item.get("id") in declared}
        if found:
            return found
    if isinstance(doc, dict) and doc and set(doc) <= set(declared):
        if len(wanted) > 1 or set(doc) == set(wanted):
            return doc
    return None


def _payload(key: str, value: Any, spec: OutputSpec, fetch) -> Payload:
    if isinstance(value, dict) and isinstance(value.get("href"), str) and fetch is not None \
            and "value" not in value:
        answer = fetch(value["href"])
        media = answer.media_type or value.get("type") or spec.media_type
        return Payload(key, media, answer.body)
    if isinstance(value, dict) and "value" in value and set(value) <= {
            "value", "mediaType", "type", "encoding", "id", "format", "schema"}:
        media = value.get("mediaType") or value.get("type") or spec.media_type
        if isinstance(media, dict):
            media = media.get("mediaType") or spec.media_type
        inner = value["value"]
        if value.get("encoding") == "base64" or (
                isinstance(inner, str) and media_kind(media) in ("raster", "file")
                and spec.media_type != "text/plain"):
            try:
                return Payload(key, media, base64.b64decode(inner, validate=True))
            except ValueError:
                pass
        if isinstance(inner, str) and media_kind(media) in ("table", "file"):
            return Payload(key, media, inner.encode("utf-8"))
        return Payload(key, media if media_kind(media) in ("json", "vector") else JSON,
                       json.dumps(inner, ensure_ascii=False, indent=1).encode("utf-8"))
    media = spec.media_type if media_kind(spec.media_type) in ("json", "vector") else JSON
    if isinstance(value, dict) and value.get("type") in ("FeatureCollection", "Feature"):
        media = "application/geo+json"
    return Payload(key, media, json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8"))


def read_csv(content: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV payload, for the table and the join with the input zones."""
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def column_type(values: list[str]) -> str:
    """``integer``, ``number`` or ``string``: the narrowest type every non-empty value fits."""
    kind = "integer"
    for value in values:
        if value in ("", None):
            continue
        try:
            int(value)
            continue
        except ValueError:
            pass
        try:
            float(value)
            kind = "number"
        except ValueError:
            return "string"
    return kind


def summary(payload: Payload, limit: int = 4000) -> str:
    """A JSON output for the log: indented, cut at ``limit`` characters."""
    try:
        body = json.dumps(payload.json(), ensure_ascii=False, indent=2)
    except ValueError:
        body = payload.text()
    return body if len(body) <= limit else body[:limit] + " …"
