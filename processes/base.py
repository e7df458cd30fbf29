"""What every Sentinelle processor shares: its metadata kept intact, the imagery it reads (the
territory's source, see :func:`sentinelle.processes.inputs.resolve_source`), the limits in
force, and errors mapped to HTTP once.

A process module is ``PROCESS_METADATA`` + a subclass of :class:`CatalogProcessor` whose
:meth:`~CatalogProcessor.run` parses the inputs and calls the module's compute function.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor

from sentinelle.catalog.area import Area
from sentinelle.catalog.source import Catalog, open_catalog
from sentinelle.processes.errors import to_process_error
from sentinelle.processes.inputs import resolve_source
from sentinelle.settings import Limits


class CatalogProcessor(BaseProcessor):
    """pygeoapi processor over the territories' imagery; optional config keys: ``data`` (a
    catalog path or STAC API URL for areas outside every territory) and ``preset``."""

    def __init__(self, processor_def: dict, metadata: dict):
        # pygeoapi's OpenAPI generation pops keys from the metadata: keep the module's intact
        super().__init__(processor_def, copy.deepcopy(metadata))
        self.supports_outputs = True
        self.source = processor_def.get("data")
        self.preset = processor_def.get("preset", "auto")

    def _fallback(self) -> Catalog:
        source = self.source if "://" in str(self.source) else Path(str(self.source))
        return open_catalog(source, self.preset)

    def catalog(self, area: Area, source: str | None = None, *,
                kind: str | None = "optical") -> Catalog:
        """The imagery for ``area``: the ``source`` collection, else its territory's."""
        return self.imagery(area, source, kind=kind)[0]

    def imagery(self, area: Area, source: str | None = None, *, kind: str | None = "optical"):
        """``(catalog, ImagerySource | None)`` for ``area`` (see ``resolve_source``)."""
        return resolve_source(source, area, kind=kind,
                              fallback=self._fallback if self.source else None)

    def execute(self, data, outputs=None):
        try:
            return self.run(data, outputs, limits=Limits.from_env())
        except Exception as err:
            raise to_process_error(err) from err

    def run(self, data: Any, outputs: Any, *, limits: Limits) -> tuple[str, Any]:
        """(media type, payload) for validated ``data``; domain errors propagate."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__}>"
