"""Settings read from the environment, one prefix (``SENTINELLE_``), passed explicitly.

Nothing here configures GDAL or Dask on import: callers ask for a :class:`Limits` or a data
folder and hand it on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the configuration a fresh clone serves, and where its OpenAPI document is written
DEFAULT_CONFIG = REPO_ROOT / "pygeoapi-config.yml"
DEFAULT_OPENAPI = REPO_ROOT / "build" / "openapi.yml"


def data_dir() -> Path:
    """Folder holding ``catalog/``, ``vectors/`` and ``truth/`` (``SENTINELLE_DATA``)."""
    return Path(os.environ.get("SENTINELLE_DATA", REPO_ROOT / "data")).resolve()


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"{name} must be an integer, got {value!r}") from err


@dataclass(frozen=True)
class Limits:
    """Size limits applied before any pixel is read (every size has a limit)."""

    max_pixels: int = 100_000_000  # time × band × y × x, per request
    max_dates: int = 120  # scenes in one cube
    max_search_items: int = 1_000  # items a search may return
    chunk_size: int = 1024  # px, follows COG blocks
    max_zones: int = 50_000  # zones in one zonal-statistics request
    max_body_bytes: int = 8 * 1024 * 1024  # bytes of one request body (413 above)
    max_json_depth: int = 64  # nesting of arrays/objects in a JSON body (400 above)

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_pixels=_int_env("SENTINELLE_MAX_PIXELS", cls.max_pixels),
            max_dates=_int_env("SENTINELLE_MAX_DATES", cls.max_dates),
            max_search_items=_int_env("SENTINELLE_MAX_SEARCH_ITEMS", cls.max_search_items),
            chunk_size=_int_env("SENTINELLE_CHUNK_SIZE", cls.chunk_size),
            max_zones=_int_env("SENTINELLE_MAX_ZONES", cls.max_zones),
            max_body_bytes=_int_env("SENTINELLE_MAX_BODY_BYTES", cls.max_body_bytes),
            max_json_depth=_int_env("SENTINELLE_MAX_JSON_DEPTH", cls.max_json_depth),
        )
