"""Bootstrapping and checking a territory: what ``sentinelle territory add`` writes and what
``sentinelle territory check`` says.

:func:`block` builds a territory block from what an administrator knows (a communes file or
a served collection and a filter, a catalog path or STAC API URL, a preset, local layers);
:func:`add_to_config` writes it into the configuration file without touching the rest of the
file (comments kept) and checks that the result still parses.  :func:`check` opens everything
the block names, as the server will, and reports in plain sentences: whether the source
answers, which assets map to which bands, how many scenes and dates cover the area, whether
the cloud mask is there, which indices can be computed, whether each layer opens — and what
is missing, with what to change.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sentinelle.territories.model import (
    ROLES,
    ImagerySource,
    LocalLayer,
    Territory,
    TerritoryError,
    parse_territory,
)
from sentinelle.territories.registry import Registry

#: scenes listed at most when checking a source
MAX_CHECKED_SCENES = 1000


# --- add -------------------------------------------------------------------------------------

def block(*, title_fr: str, title_en: str | None = None, area: dict, catalog: str,
          preset: str = "auto", mask: Any = None, collections: list[str] | None = None,
          crs: list[str] | None = None, layers: list[dict] | None = None,
          coverages: list[str] | None = None, assets: dict | None = None) -> dict:
    """A territory block (a plain mapping, as YAML will hold it)."""
    imagery: dict[str, Any] = {"catalog": catalog, "preset": preset}
    if mask is not None:
        imagery["mask"] = mask
    if collections:
        imagery["collections"] = list(collections)
    if assets:
        imagery["assets"] = dict(assets)
    if coverages is not None:
        imagery["coverages"] = list(coverages)
    out: dict[str, Any] = {"title": {"fr": title_fr, "en": title_en or title_fr},
                           "area": area}
    if crs:
        out["crs"] = list(crs)
    out["imagery"] = {"s2": imagery}
    if layers:
        out["layers"] = {layer.pop("id"): layer for layer in (dict(x) for x in layers)}
    return out


def layer_spec(text: str) -> dict:
    """``ROLE=PATH[:LAYER][@EPSG:XXXX]`` (``--layer`` of ``territory add``) → a layer block."""
    match = re.fullmatch(r"(?P<role>[a-z-]+)=(?P<path>[^@]+?)(?::(?P<layer>[^:@/\\]+))?"
                         r"(?:@(?P<crs>.+))?", text.strip())
    if not match or match["role"] not in ROLES:
        raise ValueError(f"--layer {text!r}: write ROLE=PATH[:LAYER][@EPSG:XXXX] with ROLE one "
                         f"of {', '.join(ROLES)}")
    path = Path(match["path"])
    spec: dict[str, Any] = {"id": match["role"], "role": match["role"],
                            "data": str(path.resolve()), "id_field": "id"}
    import pyogrio

    try:
        info = pyogrio.read_info(path, layer=match["layer"])
    except Exception as err:  # noqa: BLE001 - pyogrio/GDAL errors
        raise ValueError(f"--layer {text!r}: cannot read {path}: {err}") from err
    names = list(info["fields"])
    spec["layer"] = match["layer"] or pyogrio.list_layers(path)[0][0]
    for candidate in ("id", "code", "insee", "code_insee", "fid"):
        if candidate in names:
            spec["id_field"] = candidate
            break
    for candidate in ("name", "nom", "libelle"):
        if candidate in names:
            spec["title_field"] = candidate
            break
    spec["storage_crs"] = match["crs"] or info.get("crs") or "OGC:CRS84"
    return spec


def add_to_config(config: Path, territory_id: str, content: dict) -> None:
    """Insert ``territories.<territory_id>`` into ``config`` (text insertion: comments and
    layout kept), after checking the block and that the id is new; atomic."""
    from pygeoapi.util import yaml_load

    parse_territory(territory_id, content)  # TerritoryError says what is wrong
    text = config.read_text(encoding="utf-8")
    current = yaml.safe_load(text) or {}
    if territory_id in (current.get("territories") or {}):
        raise TerritoryError(f"territories.{territory_id}: already configured in {config}; "
                             "edit or remove that block")
    dumped = yaml.safe_dump({territory_id: content}, sort_keys=False, allow_unicode=True,
                            width=100)
    indented = "".join(f"  {line}" if line.strip() else line
                       for line in dumped.splitlines(keepends=True))
    found = re.search(r"^territories:[ \t]*(\{\})?[ \t]*\n", text, flags=re.M)
    if found is None:
        new = text.rstrip("\n") + "\n\nterritories:\n" + indented
    else:
        new = text[:found.start()] + "territories:\n" + indented + "\n" + text[found.end():]
    # the file must still load, with the new territory in it
    from io import StringIO

    loaded = yaml_load(StringIO(new))
    parse_territory(territory_id, loaded["territories"][territory_id])
    tmp = config.with_name(f".{config.name}.{os.getpid()}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, config)


# --- check -------------------------------------------------------------------------------------

@dataclass
class Report:
    """What ``territory check`` found: lines to print and the problems among them."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def say(self, text: str, indent: int = 0) -> None:
        self.lines.append("  " * indent + text)

    def problem(self, text: str, indent: int = 0) -> None:
        self.problems.append(text)
        self.lines.append("  " * indent + "✗ " + text)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        verdict = ("OK: the territory is ready to serve" if self.ok else
                   f"{len(self.problems)} problem(s) to fix before serving this territory")
        return "\n".join([*self.lines, "", verdict])


def _km2(area) -> float:
    lon, lat = area.geometry.centroid.coords[0]
    zone = int((lon + 180) // 6) % 60 + 1
    return area.to_crs((32600 if lat >= 0 else 32700) + zone).geometry.area / 1e6


def _check_source(report: Report, registry: Registry, territory: Territory,
                  source: ImagerySource) -> None:
    from sentinelle.analysis.indices import INDICES
    from sentinelle.catalog.gdal import check_assets
    from sentinelle.catalog.presets import BANDS, CLASS_BANDS, VALUE
    from sentinelle.catalog.search import measure_clouds

    report.say(f"imagery {source.id} ({source.collection_id}): {source.catalog}", 1)
    try:
        catalog = source.open()
    except Exception as err:  # noqa: BLE001 - any failure is reported as such
        report.problem(f"the source does not answer: {err}", 2)
        return
    kind = type(catalog).__name__.replace("Catalog", "").lower() or "catalog"
    report.say(f"answers: yes ({kind}); preset {catalog.preset.name} "
               f"({catalog.preset_reason}); {catalog.preset.title}", 2)
    try:
        area = registry.area(territory)
        scenes = catalog.find(area, limit=MAX_CHECKED_SCENES)
    except Exception as err:  # noqa: BLE001
        report.problem(f"searching the area failed: {err}", 2)
        return
    if not scenes:
        report.problem("no scene of the source covers the territory's area: check the area, "
                       "the catalog and its collections", 2)
        return
    dates = sorted({s.date.isoformat() for s in scenes})
    tiles = sorted({s.mgrs_tile for s in scenes if s.mgrs_tile})
    more = " (or more)" if len(scenes) >= MAX_CHECKED_SCENES else ""
    report.say(f"scenes over the area: {len(scenes)}{more} on {len(dates)} date(s), "
               f"{dates[0]} → {dates[-1]}" + (f"; tiles {', '.join(tiles)}" if tiles else ""),
               2)
    epsg = Counter(s.epsg for s in scenes).most_common()
    report.say("CRS of the scenes: " + ", ".join(f"EPSG:{e} ({n})" for e, n in epsg), 2)
    first = scenes[-1]
    mapping = ", ".join(f"{band} ← {asset.source_key}" for band, asset in first.assets.items())
    report.say(f"bands (latest scene {first.id}): {mapping}", 2)
    present = set.intersection(*(set(s.assets) for s in scenes))
    if source.kind == "product":
        if VALUE not in present:
            keys = sorted(first.properties and first.assets) or ["none"]
            report.problem(f"the product's asset is not found in every item (mapped keys: "
                           f"{', '.join(keys)}); set assets: {{value: <asset key>}}", 2)
    else:
        wanted = [b for b in ("blue", "green", "red", "nir", "swir16") if b not in present]
        if wanted:
            report.problem(f"band(s) {', '.join(wanted)} missing from some scenes; map them "
                           "with assets: {band: <asset key>} or choose another preset", 2)
        extra = sorted(set(catalog.preset.band_keys) & set(BANDS) - present - CLASS_BANDS)
        if extra:
            report.say(f"not in the scenes (optional): {', '.join(extra)}", 2)
        mask = catalog.mask
        if mask.masks and mask.band not in present:
            report.problem(f"the cloud mask band {mask.band} ({mask.describe()}) is missing "
                           "from some scenes; map it in assets, or set mask: none", 2)
        else:
            report.say(f"cloud mask: {mask.describe()}" + (
                "" if mask.masks else " — indices and maps are served unmasked; max_cloud "
                "cannot filter"), 2)
        usable = [n for n, spec in INDICES.items() if set(spec.bands) <= present]
        unusable = {n: sorted(set(spec.bands) - present) for n, spec in INDICES.items()
                    if n not in usable}
        report.say(f"indices: {', '.join(usable) or 'none'}" + "".join(
            f"; {n} needs {', '.join(b)}" for n, b in unusable.items()), 2)
        for index in source.indices:
            if index not in usable:
                report.problem(f"coverages lists {index}, which these scenes cannot compute",
                               2)
    errors = check_assets((asset.href, first.id, band) for band, asset in first.assets.items())
    if errors:
        for (_, band), error in errors.items():
            report.problem(f"{band} of {first.id} does not open: {error}", 2)
    else:
        report.say(f"files of {first.id} open: yes", 2)
        if catalog.mask.masks and catalog.mask.band in first.assets or \
                not catalog.mask.knows_nodata:
            try:
                has_data, cloud = measure_clouds([first], area, catalog.mask)[first.id]
                report.say(f"{first.date}: " + (
                    "no data over the area" if not has_data else
                    "cloud over the area unknown (no mask)" if cloud is None else
                    f"{cloud * 100:.0f} % cloud over the area"), 2)
            except Exception as err:  # noqa: BLE001
                report.problem(f"reading the cloud mask of {first.id} failed: {err}", 2)


def _check_layer(report: Report, layer: LocalLayer) -> None:
    from pygeoapi.plugin import load_plugin

    report.say(f"layer {layer.id} ({layer.collection_id}, role {layer.role}): "
               f"{layer.provider['data']}", 1)
    try:
        provider = load_plugin("provider", dict(layer.provider))
        hits = provider.query(offset=0, limit=1, resulttype="hits", bbox=[], datetime_=None,
                              properties=[], sortby=[], select_properties=[],
                              skip_geometry=True, q=None, filterq=None)
    except Exception as err:  # noqa: BLE001 - provider errors carry user_msg
        report.problem(f"the layer does not open: {getattr(err, 'user_msg', None) or err}", 2)
        return
    fields = list(provider.get_fields())
    report.say(f"opens: yes, {hits.get('numberMatched', '?'):,} feature(s); fields: "
               f"{', '.join(fields)}; storage CRS {layer.storage_crs}", 2)
    unknown = sorted(set(layer.fields) - set(fields))
    if unknown:
        report.problem(f"fields describes {', '.join(unknown)}, which the layer does not have",
                       2)


def check(registry: Registry, territory_id: str) -> Report:
    """Open everything the territory's block names, as the server will (see the module)."""
    report = Report()
    blocks = registry.config.get("territories") or {}
    if territory_id not in blocks:
        report.problem(f"no territory {territory_id!r} in the configuration; configured: "
                       f"{', '.join(blocks) or 'none'}")
        return report
    try:
        territory = parse_territory(territory_id, blocks[territory_id])
    except TerritoryError as err:
        report.problem(str(err))
        return report
    report.say(f"Territory {territory.id} — {territory.title['fr']} / {territory.title['en']}")
    try:
        area = registry.area(territory)
        west, south, east, north = area.bounds
        report.say(f"area: lon/lat bounds {west:.4f}, {south:.4f}, {east:.4f}, {north:.4f}; "
                   f"{_km2(area):,.1f} km²", 1)
        if not all(math.isfinite(v) for v in area.bounds):
            report.problem("the area's bounds are not finite", 1)
    except Exception as err:  # noqa: BLE001
        report.problem(f"the area cannot be read: {err}", 1)
    if not territory.imagery:
        report.problem("no imagery source: add one under imagery:", 1)
    for source in territory.imagery:
        _check_source(report, registry, territory, source)
    if not territory.layers:
        report.say("no local layer (parcels, communes…): processes take inline zones only", 1)
    for layer in territory.layers:
        _check_layer(report, layer)
    return report
