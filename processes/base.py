"""What every Sentinelle processor shares: its metadata kept intact, the catalog it reads,
the limits in force, and errors mapped to HTTP once.

A process module is ``PROCESS_METADATA`` + a subclass of :class:`CatalogProcessor` whose
:meth:`~CatalogProcessor.run` parses the inputs and calls the module's compute function.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor

from sentinelle.catalog.source import Catalog, open_catalog
from sentinelle.processes.errors import to_process_error
from sentinelle.settings import Limits, data_dir


def default_catalog() -> str:
    """``$SENTINELLE_CATALOG``, else the sample catalog in the data folder."""
    return os.environ.get("SENTINELLE_CATALOG") or str(data_dir() / "catalog")


class CatalogProcessor(BaseProcessor):
    """pygeoapi processor over a Sentinelle catalog; config keys: ``data`` (catalog path or
    STAC API URL, default ``$SENTINELLE_CATALOG``), ``preset`` (default ``auto``)."""

    def __init__(self, processor_def: dict, metadata: dict):
        # pygeoapi's OpenAPI generation pops keys from the metadata: keep the module's intact
        super().__init__(processor_def, copy.deepcopy(metadata))
        self.supports_outputs = True
        self.source = str(processor_def.get("data") or default_catalog())
        self.preset = processor_def.get("preset", "auto")

    def catalog(self) -> Catalog:
        """The catalog (opened once per process and cached by the catalog layer)."""
        source = self.source if "://" in self.source else Path(self.source)
        return open_catalog(source, self.preset)

    def execute(self, data, outputs=None):
        try:
            return self.run(data, outputs, limits=Limits.from_env())
        except Exception as err:
            raise to_process_error(err) from err

    def run(self, data: Any, outputs: Any, *, limits: Limits) -> tuple[str, Any]:
        """(media type, payload) for validated ``data``; domain errors propagate."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__}> {self.source}"
