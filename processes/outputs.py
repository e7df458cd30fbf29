"""How a process's result is handed back: raw, or wrapped in the OGC API Processes results
document (``response: document``).  Shared by the synchronous path (the job manager) and the
Dask workers that run asynchronous jobs."""

from __future__ import annotations

import base64
import json
from typing import Any

from pygeoapi.process.base import BaseProcessor
from pygeoapi.util import RequestedResponse

RAW = RequestedResponse.raw.value
DOCUMENT = RequestedResponse.document.value
JSON_TYPES = ("application/json", "application/ld+json")


def document_value(processor: BaseProcessor, mimetype: str, outputs: Any) -> tuple[str, Any]:
    """Bytes as an OGC qualified value for ``response: document`` (JSON media types embedded
    as JSON, others base64); anything else unchanged."""
    if not isinstance(outputs, bytes):
        return mimetype, outputs
    output_id = next(iter(processor.metadata.get("outputs", {})), "result")
    if "json" in mimetype.split(";")[0]:  # GeoJSON as bytes: embed it as JSON, not base64
        return "application/json", {"id": output_id, "mediaType": mimetype,
                                    "value": json.loads(outputs)}
    return "application/json", {
        "id": output_id, "mediaType": mimetype, "encoding": "base64",
        "value": base64.b64encode(outputs).decode("ascii"),
    }
