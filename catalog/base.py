"""What every source of scenes is: :class:`Catalog` (find scenes over an area and a time, get
one by id, with its preset and cloud mask), and :class:`ScenesCatalog`, a catalog held in
memory (a static STAC catalog, a folder of Theia products) searched by footprint."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from sentinelle.catalog.area import Area
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.masks import Mask
from sentinelle.catalog.presets import Preset, get_preset, guess_preset, with_assets
from sentinelle.catalog.scenes import Scene
from sentinelle.errors import NotFound


class Catalog(ABC):
    """A source of scenes: Sentinel-2 (L2A or L1C) or a single-band product series."""

    preset: Preset
    #: the cloud mask of its scenes (``NoMask`` when it has none)
    mask: Mask
    #: why the preset was chosen (``auto``: what was detected; else "configured")
    preset_reason: str = "configured"

    @abstractmethod
    def find(self, area: Area | None = None, interval: Interval | None = None, *,
             limit: int | None = None) -> list[Scene]:
        """Scenes whose footprint meets ``area`` and whose date is in ``interval``, by date."""

    @abstractmethod
    def get(self, scene_id: str) -> Scene:
        """The scene with this id (:class:`NotFound` otherwise)."""


class ScenesCatalog(Catalog):
    """A catalog held in memory: its scenes sorted by date, searched by footprint."""

    _scenes: list[Scene]
    _by_id: dict[str, Scene]

    def _index(self, scenes: list[Scene]) -> None:
        self._scenes = sorted(scenes, key=lambda s: (s.datetime, s.id))
        self._by_id = {s.id: s for s in self._scenes}

    @property
    def scenes(self) -> Sequence[Scene]:
        return self._scenes

    def find(self, area=None, interval=None, *, limit=None):
        out = []
        lonlat = area.to_crs("OGC:CRS84").geometry if area is not None else None
        for scene in self._scenes:
            if interval is not None and not interval.contains(scene.datetime):
                continue
            if lonlat is not None and not lonlat.intersects(scene.footprint):
                continue
            out.append(scene)
            if limit is not None and len(out) >= limit:
                break
        return out

    def get(self, scene_id):
        try:
            return self._by_id[scene_id]
        except KeyError:
            raise NotFound(f"no scene {scene_id!r} in the catalog") from None


def resolve_preset(name: str, first_item: dict | None, assets=None) -> tuple[Preset, str]:
    """The preset called ``name`` (or guessed from ``first_item`` for ``auto``), with the
    source's ``assets:`` overrides, and why it was chosen."""
    if name == "auto":
        preset, reason = guess_preset(first_item) if first_item else \
            (get_preset("earth-search"), "empty catalog: Earth Search v1 assumed")
        reason = f"auto-detected: {reason}"
    else:
        preset, reason = get_preset(name), "configured"
    return with_assets(preset, assets), reason
