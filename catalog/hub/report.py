"""What a sync did, in numbers a person can check: items, bytes, time, failures."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "unknown"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value} B"


@dataclass
class SyncReport:
    started: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc)
                         .isoformat().replace("+00:00", "Z"))
    upstream: str = ""
    target: str = ""
    found: int = 0  # upstream items over the areas and dates
    planned: int = 0  # local items wanted (after the cloud filter)
    rejected: dict[str, str] = field(default_factory=dict)  # scene id → why it was left out
    up_to_date: list[str] = field(default_factory=list)  # items already complete
    fetched: list[str] = field(default_factory=list)  # items completed in this run
    failed: dict[str, str] = field(default_factory=dict)  # item (or scene) id → error
    assets_fetched: int = 0
    assets_skipped: int = 0
    retries: int = 0
    bytes_assets: int | None = 0  # body bytes downloaded for the assets (GDAL's counters)
    bytes_cloud: int | None = 0  # body bytes downloaded to measure clouds (SCL windows)
    bytes_full: int | None = 0  # what downloading the whole fetched assets would have cost
    bytes_written: int = 0  # local files written
    seconds: float = 0.0
    throttled_seconds: float = 0.0  # time slept to respect max_bytes_per_second

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def bytes_total(self) -> int | None:
        if self.bytes_assets is None or self.bytes_cloud is None:
            return None
        return self.bytes_assets + self.bytes_cloud

    @property
    def saving(self) -> float | None:
        """Share of the whole-file bytes not downloaded (0–1)."""
        if not self.bytes_full or self.bytes_assets is None:
            return None
        return 1 - self.bytes_assets / self.bytes_full

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(ok=self.ok, bytes_total=self.bytes_total, saving=self.saving)
        return out

    def format(self) -> str:
        lines = [
            f"hub sync {self.upstream} → {self.target}",
            f"  items: {self.found} found upstream, {len(self.rejected)} left out "
            f"(clouds / no data), {self.planned} wanted: {len(self.fetched)} fetched, "
            f"{len(self.up_to_date)} already complete, {len(self.failed)} failed",
            f"  assets: {self.assets_fetched} fetched, {self.assets_skipped} already complete"
            f" (checksums verified), {self.retries} retries",
            f"  transferred: {human_bytes(self.bytes_assets)} for assets + "
            f"{human_bytes(self.bytes_cloud)} to measure clouds; whole files would have been "
            f"{human_bytes(self.bytes_full)}"
            + (f" ({self.saving:.1%} saved)" if self.saving is not None else ""),
            f"  written: {human_bytes(self.bytes_written)}; time {self.seconds:.1f} s"
            + (f" (of which {self.throttled_seconds:.1f} s throttled)"
               if self.throttled_seconds else ""),
        ]
        for item_id, error in sorted(self.failed.items()):
            lines.append(f"  FAILED {item_id}: {error}")
        return "\n".join(lines)
