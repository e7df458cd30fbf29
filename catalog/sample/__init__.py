"""Deterministic synthetic Sentinel-2 sample data: ``generate(out_dir)`` writes a static STAC
catalog of COGs over Brittany and French Guiana, vector layers and the truth behind them;
``outline(out_dir, name)`` reads back one area's outline (for tests and benchmarks)."""

import json
from pathlib import Path

from sentinelle.catalog.area import Area

from .generate import DEFAULT_SEED, generate


def outline(root: str | Path, name: str) -> Area:
    """The outline of the sample area ``name`` (``bretagne``, ``guyane``), CRS84, from
    ``root/vectors/areas.geojson``."""
    collection = json.loads((Path(root) / "vectors" / "areas.geojson").read_text("utf-8"))
    for feature in collection["features"]:
        if feature["properties"].get("area") == name:
            return Area.from_geojson(feature["geometry"])
    raise KeyError(f"no sample area {name!r}")


__all__ = ["DEFAULT_SEED", "generate", "outline"]
