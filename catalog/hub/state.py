"""The hub's memory between runs: what is complete, with which checksum, and which scenes were
already judged too cloudy — so a second sync transfers nothing and a killed one resumes.

Stored as an append-only journal (``.hub/state.jsonl``): one JSON line per event, flushed and
fsynced as soon as an asset is published.  A run killed mid-line leaves at most one truncated
last line, which loading ignores.  :meth:`HubState.compact` rewrites the journal (``*.part`` then
``os.replace``) at the end of a run.  The journal is the authority on what is complete; a local
file is trusted only when its size and sha256 still match the journal.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinelle.catalog.hub.fetch import sha256_file

STATE_DIR = ".hub"


@dataclass
class AssetRecord:
    item: str
    band: str
    path: str  # relative to the hub folder
    sha256: str
    size: int
    upstream_href: str
    upstream_updated: str | None
    bounds: list[float] | None  # clip box in the item CRS; None: whole file
    fetched: str  # ISO 8601 UTC
    transferred: int | None
    full_size: int | None
    epsg: int | None
    transform: list[float]
    shape: list[int]
    dtype: str
    nodata: float | None

    @property
    def key(self) -> str:
        return f"{self.item}/{self.band}"


class HubState:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.folder = self.root / STATE_DIR
        self.journal = self.folder / "state.jsonl"
        self.assets: dict[str, AssetRecord] = {}
        self.clouds: dict[str, float | None] = {}  # "scene|area" → fraction
        self.items: dict[str, dict[str, Any]] = {}  # item id → {"json": path, "collection": …}
        self._handle = None
        self._load()

    # --- persistence ---------------------------------------------------------------------
    def _load(self) -> None:
        if not self.journal.exists():
            return
        with open(self.journal, encoding="utf-8") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                self._apply(event)

    def _apply(self, event: dict) -> None:
        kind = event.pop("kind", None)
        if kind == "asset":
            record = AssetRecord(**event)
            self.assets[record.key] = record
        elif kind == "forget":
            self.assets.pop(event["key"], None)
        elif kind == "cloud":
            self.clouds[event["key"]] = event["fraction"]
        elif kind == "item":
            self.items[event["id"]] = event

    def _append(self, event: dict) -> None:
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.journal, "a", encoding="utf-8")
        self._handle.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._apply(dict(event))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def compact(self) -> None:
        """Rewrite the journal with one line per live record (atomically)."""
        self.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.journal.with_name(self.journal.name + ".part")
        with open(part, "w", encoding="utf-8") as out:
            for record in self.assets.values():
                out.write(json.dumps({"kind": "asset", **record.__dict__}) + "\n")
            for key, fraction in self.clouds.items():
                out.write(json.dumps({"kind": "cloud", "key": key, "fraction": fraction}) + "\n")
            for item in self.items.values():
                out.write(json.dumps({"kind": "item", **item}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, self.journal)

    # --- records -------------------------------------------------------------------------
    def record_asset(self, record: AssetRecord) -> None:
        self._append({"kind": "asset", **record.__dict__})

    def forget_asset(self, key: str) -> None:
        if key in self.assets:
            self._append({"kind": "forget", "key": key})

    def record_cloud(self, scene_id: str, area: str, fraction: float | None) -> None:
        self._append({"kind": "cloud", "key": f"{scene_id}|{area}", "fraction": fraction})

    def cloud(self, scene_id: str, area: str) -> tuple[bool, float | None]:
        key = f"{scene_id}|{area}"
        return (key in self.clouds, self.clouds.get(key))

    def record_item(self, item_id: str, json_path: str, collection: str) -> None:
        self._append({"kind": "item", "id": item_id, "json": json_path,
                      "collection": collection})

    def complete_asset(self, item: str, band: str, *, upstream_href: str,
                       upstream_updated: str | None, bounds: list[float] | None,
                       verify: bool) -> AssetRecord | None:
        """The record of this asset when the local file is complete and unchanged, else None.

        Complete means: same upstream href, same upstream ``updated`` stamp, same clip box, the
        file exists with the recorded size and (``verify``) the recorded sha256.
        """
        record = self.assets.get(f"{item}/{band}")
        if record is None or record.upstream_href != upstream_href \
                or record.upstream_updated != upstream_updated:
            return None
        if (record.bounds is None) != (bounds is None) or (
                bounds is not None and any(abs(a - b) > 1e-6
                                           for a, b in zip(record.bounds, bounds))):
            return None
        path = self.root / record.path
        try:
            if path.stat().st_size != record.size:
                return None
        except OSError:
            return None
        if verify and sha256_file(path) != record.sha256:
            return None
        return record

    def remove_stale_parts(self) -> list[Path]:
        """Delete ``*.part`` files left by a killed run (never visible as finished files)."""
        removed = []
        for part in self.root.rglob("*.part"):
            part.unlink(missing_ok=True)
            removed.append(part)
        return removed
