"""``sync(config)``: search upstream, measure clouds over the areas, fetch what is missing,
write the local STAC catalog, report.  Incremental (complete assets are skipped after checking
their checksum), resumable (the journal is written as each asset lands) and atomic per file.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Sequence

import shapely

from sentinelle.catalog.area import CRS84, Area
from sentinelle.catalog.hub.config import HubConfig
from sentinelle.catalog.hub.fetch import (
    Fetched,
    GdalTraffic,
    RateLimiter,
    fetch_whole,
    fetch_window,
    gdal_options,
    with_retries,
)
from sentinelle.catalog.hub.plan import (
    ItemPlan,
    NamedArea,
    UpstreamCatalog,
    load_areas,
    plan_items,
)
from sentinelle.catalog.hub.report import SyncReport
from sentinelle.catalog.hub.stac import build_item, write_api_files, write_catalog, write_json
from sentinelle.catalog.hub.state import AssetRecord, HubState
from sentinelle.catalog.presets import CLASS_BANDS
from sentinelle.catalog.scenes import Scene

log = logging.getLogger("sentinelle.hub")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _error(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:300]}"


class _Clouds:
    """Cloud fraction of an area per scene: from the journal, else measured from SCL (by
    range reads), in one batch per area, scene by scene with retries if the batch fails."""

    def __init__(self, state: HubState, config: HubConfig, report: SyncReport):
        self.state, self.config, self.report = state, config, report
        self.failed: dict[str, str] = {}

    def prefetch(self, scenes: Sequence[Scene], areas: Sequence[NamedArea]) -> None:
        from sentinelle.catalog.search import cloud_fractions

        for named in areas:
            todo = [s for s in scenes if named.area.intersects_lonlat(s.footprint)
                    and "scl" in s.assets and not self.state.cloud(s.id, named.name)[0]]
            if not todo:
                continue
            try:
                fractions = cloud_fractions(todo, named.area)
            except Exception as err:  # one bad SCL fails the batch: isolate it below
                log.info("cloud batch for %s failed (%s); measuring scene by scene",
                         named.name, _error(err))
                fractions = {}
                for scene in todo:
                    try:
                        fractions.update(with_retries(
                            lambda scene=scene: cloud_fractions([scene], named.area),
                            retries=self.config.retries, backoff=self.config.backoff,
                            on_retry=self._retried))
                    except Exception as err2:
                        self.failed[scene.id] = f"cloud measurement (scl): {_error(err2)}"
            for scene_id, fraction in fractions.items():
                self.state.record_cloud(scene_id, named.name, fraction)

    def _retried(self, attempt: int, err: BaseException) -> None:
        self.report.retries += 1
        log.warning("retry %d after %s", attempt, _error(err))

    def __call__(self, scene: Scene, named: NamedArea) -> float | None:
        known, fraction = self.state.cloud(scene.id, named.name)
        return fraction if known else None


def _search_area(areas: Sequence[NamedArea]) -> Area:
    return Area(shapely.union_all([a.area.to_crs(CRS84).geometry for a in areas]), CRS84)


def sync(config: HubConfig, *, progress: bool = False,
         now: dt.datetime | None = None) -> SyncReport:
    """Bring ``config.target`` up to date with the upstream STAC API; never raises for an
    upstream failure: those are in ``report.failed`` (``report.ok`` is False)."""
    started = time.perf_counter()
    root = Path(config.target)
    root.mkdir(parents=True, exist_ok=True)
    report = SyncReport(upstream=config.url, target=str(root))
    state = HubState(root)
    for part in state.remove_stale_parts():
        log.info("removed %s left by an interrupted run", part)
    counting = GdalTraffic.enable()
    GdalTraffic.clear_cache()  # read upstream afresh, never from a previous run's blocks
    if not counting:
        report.bytes_assets = report.bytes_cloud = None
    limiter = RateLimiter(config.max_bytes_per_second)
    options = gdal_options(timeout=config.timeout, backoff=config.backoff)

    def retried(attempt: int, err: BaseException) -> None:
        report.retries += 1
        log.warning("retry %d after %s", attempt, _error(err))

    try:
        areas = load_areas(config.areas)
        catalog = UpstreamCatalog(config.url, config.preset,
                                  collections=list(config.collections or []) or None,
                                  timeout=config.timeout)
        try:
            pairs = with_retries(lambda: catalog.find_items(_search_area(areas),
                                                            config.interval(now)),
                                 retries=config.retries, backoff=config.backoff,
                                 on_retry=retried)
        except Exception as err:
            report.failed["search"] = _error(err)
            return report
        report.found = len(pairs)

        clouds = _Clouds(state, config, report)
        if config.max_cloud is not None:
            before = GdalTraffic.downloaded()
            clouds.prefetch([scene for scene, _ in pairs], areas)
            after = GdalTraffic.downloaded()
            if counting:
                report.bytes_cloud = after - before
            report.failed.update(clouds.failed)
            pairs = [(s, raw) for s, raw in pairs if s.id not in clouds.failed]
        plans, rejected = plan_items(pairs, areas, config, cloud_of=clouds)
        report.rejected = rejected
        report.planned = len(plans)

        from tqdm import tqdm

        bar = tqdm(total=len(plans) * len(config.assets), unit="asset", disable=not progress,
                   desc="hub sync", dynamic_ncols=True)
        try:
            for plan in plans:
                _sync_item(plan, config, state, report, root, options, limiter, retried, bar)
        finally:
            bar.close()
    finally:
        try:
            if state.items:
                write_catalog(root, state.items, title=config.name)
                write_api_files(root, state.items, public_url=config.public_url)
            state.compact()
        finally:
            state.close()
            report.throttled_seconds = round(limiter.slept, 3)
            report.seconds = round(time.perf_counter() - started, 3)
            write_json(root / ".hub" / "last-sync.json", report.as_dict())
    return report


def _sync_item(plan: ItemPlan, config: HubConfig, state: HubState, report: SyncReport,
               root: Path, options: dict, limiter: RateLimiter, retried, bar) -> None:
    scene, raw = plan.scene, plan.raw
    collection = scene.collection or "sentinel-2-l2a"
    item_dir = root / collection / plan.id
    updated = raw.get("properties", {}).get("updated")
    bounds = list(plan.bounds) if plan.bounds is not None else None
    records: dict[str, AssetRecord] = {}
    fetched_any = False
    for band in config.assets:
        asset = scene.assets[band]
        record = state.complete_asset(plan.id, band, upstream_href=asset.href,
                                      upstream_updated=updated, bounds=bounds,
                                      verify=config.verify)
        if record is not None:
            records[band] = record
            report.assets_skipped += 1
            bar.update(1)
            continue
        item_dir.mkdir(parents=True, exist_ok=True)
        path = item_dir / f"{band}.tif"
        raw_asset = raw.get("assets", {}).get(asset.source_key, {})

        def fetch(asset=asset, path=path, band=band, raw_asset=raw_asset) -> Fetched:
            if plan.bounds is None:
                checksum = str(raw_asset.get("file:checksum", ""))
                return fetch_whole(asset.href, path, timeout=config.timeout, limiter=limiter,
                                   expected_sha256=checksum[4:] if checksum.startswith("1220")
                                   else None)
            return fetch_window(asset.href, path, plan.bounds, classes=band in CLASS_BANDS,
                                options=options, limiter=limiter)

        try:
            got = with_retries(fetch, retries=config.retries, backoff=config.backoff,
                               on_retry=retried)
        except Exception as err:
            report.failed[plan.id] = f"{band} ({asset.href}): {_error(err)}"
            log.error("%s: %s could not be fetched: %s", plan.id, band, _error(err))
            bar.update(len(config.assets) - len(records))
            return
        full = raw_asset.get("file:size") or got.full_size
        record = AssetRecord(
            item=plan.id, band=band, path=str(got.path.relative_to(root)), sha256=got.sha256,
            size=got.size, upstream_href=asset.href, upstream_updated=updated, bounds=bounds,
            fetched=_now(), transferred=got.transferred, full_size=full, epsg=got.epsg,
            transform=list(got.transform), shape=list(got.shape), dtype=got.dtype,
            nodata=got.nodata)
        state.record_asset(record)
        records[band] = record
        fetched_any = True
        report.assets_fetched += 1
        report.bytes_written += got.size
        if report.bytes_assets is not None:
            report.bytes_assets = None if got.transferred is None \
                else report.bytes_assets + got.transferred
        if report.bytes_full is not None:
            report.bytes_full = None if full is None else report.bytes_full + int(full)
        bar.update(1)
        bar.set_postfix_str(f"{(report.bytes_assets or 0) / 1e6:.1f} MB")
    json_path = item_dir / f"{plan.id}.json"
    if fetched_any or not json_path.exists() or plan.id not in state.items:
        write_json(json_path, build_item(plan, records, item_dir, root))
        state.record_item(plan.id, str(json_path.relative_to(root)), collection)
        report.fetched.append(plan.id)
    else:
        report.up_to_date.append(plan.id)
