"""Zonal statistics: one value per zone (and per date) from a raster, with exact pixel weights.

Every pixel counts in proportion to the share of it that the zone covers: the coverage
fractions come from exactextract, so a parcel edge through the middle of a 10 m pixel counts
half of it.  A zone smaller than ``min_zone_pixels`` (default one pixel) gets no statistic:
it is reported, not summarised from a sliver of one pixel.  Definitions (``w`` is a
pixel's covered fraction, 0–1, and only valid, i.e. non-NaN / non-nodata, pixels count):

* ``count`` = Σw, in pixels (a 1 ha parcel on a 10 m grid counts 100);
* ``valid_fraction`` = count × pixel area / zone area: the share of the zone that has data
  (pixels outside the raster or masked count as invalid), 0–1, rounded to 1e-6 (coverage
  fractions are single precision inside exactextract);
* ``mean`` = Σwx / Σw; ``sum`` = Σwx (e.g. a total for a per-pixel quantity); ``std`` =
  the weighted population standard deviation √(Σw(x − mean)² / Σw);
* ``min``/``max`` over the valid pixels the zone covers at all (zone coordinates are snapped
  to 1e-6 pixel first, so an edge meant to lie on a pixel boundary does not pick up the
  neighbouring pixel after a reprojection);
* ``median``, ``p10``, ``p25``, ``p75``, ``p90``: exactextract's weighted quantiles (the
  distinct values weighted by their summed coverage, interpolated like numpy's default
  "linear" method when all weights are equal).

A zone without valid pixels (outside the data, fully clouded, empty or zero-area geometry)
is never dropped: its row has ``count`` 0, ``valid_fraction`` 0 and ``None`` for every other
statistic, and its ``warning`` says why (geometry problem, or no valid pixel).

How it runs: zones are reprojected to the raster CRS once and put in an STRtree; the Dask
array is then computed one block at a time (the next block is read while exactextract works
on the current one), each block is handed to exactextract with the zones that touch it, and
results of zones spanning several blocks are merged exactly (counts and sums add up, means
and variances merge with Chan's formula, min/max take the extremes, quantiles gather the
zone's (value, coverage) pairs until its last block).  Memory is a couple of blocks plus a
few numbers per zone (and the pairs of zones crossing a block edge when quantiles are asked
for), whatever the size of the raster; a time series adds five float64 numbers per zone and
date.  This is the one analysis function that computes: its output is a list of rows, not an
array.
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

import dask.array as da
import numpy as np
import shapely
import xarray as xr
from affine import Affine
from exactextract import exact_extract
from exactextract._exactextract import Feature
from exactextract.feature import FeatureSource
from exactextract.raster import NumPyRasterSource
from exactextract.writer import Writer

from sentinelle.analysis.zones import Zones, clean_geometries
from sentinelle.errors import InvalidInput, TooLarge

__all__ = [
    "DEFAULT_STATISTICS", "MAX_ZONES", "MIN_VALID_FRACTION", "STATISTICS", "Zones",
    "weighted_quantiles", "zonal_stats",
]

#: statistic name → quantile (0–1) for the order statistics, ``None`` for the others
STATISTICS: Mapping[str, float | None] = MappingProxyType({
    "mean": None, "median": 0.5, "std": None, "min": None, "max": None, "sum": None,
    "count": None, "p10": 0.10, "p25": 0.25, "p75": 0.75, "p90": 0.90,
    "valid_fraction": None,
})
DEFAULT_STATISTICS = ("mean", "std", "count", "valid_fraction")
#: default cap on the number of zones of one call (adapters pass their configured limit)
MAX_ZONES = 100_000
#: series mode: a date is "clear over a zone" when at least this share of it has data
MIN_VALID_FRACTION = 0.8
#: blocks computed ahead of the one exactextract is working on
PREFETCH = 2


def _check_statistics(statistics: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(statistics, str):
        statistics = [s for s in statistics.split(",") if s.strip()]
    names = tuple(dict.fromkeys(str(s).strip().lower() for s in statistics))
    if not names:
        raise InvalidInput(f"ask for at least one statistic among {', '.join(STATISTICS)}")
    unknown = [s for s in names if s not in STATISTICS]
    if unknown:
        raise InvalidInput(f"unknown statistic(s) {', '.join(unknown)}; "
                           f"available: {', '.join(STATISTICS)}")
    return names


def weighted_quantiles(values: np.ndarray, weights: np.ndarray,
                       quantiles: Sequence[float]) -> np.ndarray:
    """exactextract's weighted quantiles of ``values`` (NaN when there are none).

    Distinct values are sorted and weighted by their summed ``weights``; with n of them,
    value k (0-based) sits at ``s_k = k·w_k + (n − 1)·Σ_{i<k} w_i`` and quantile q is
    interpolated linearly at ``q·(n − 1)·Σw``.  Equal weights give numpy's "linear"
    quantile.  Used to merge zones that span several blocks, so that they get the very
    values exactextract gives zones read in one piece.
    """
    values = np.asarray(values, dtype="float64")
    weights = np.asarray(weights, dtype="float64")
    keep = weights > 0
    if not keep.all():
        values, weights = values[keep], weights[keep]
    if values.size == 0:
        return np.full(len(quantiles), np.nan)
    x, inverse = np.unique(values, return_inverse=True)
    w = np.bincount(inverse.ravel(), weights=weights, minlength=len(x))
    n = len(x)
    cum = np.cumsum(w)
    s = np.zeros(n)
    s[1:] = np.arange(1, n) * w[1:] + (n - 1) * cum[:-1]
    sn = cum[-1] * (n - 1)
    out = np.empty(len(quantiles))
    for j, q in enumerate(quantiles):
        target = q * sn
        right = int(np.searchsorted(s, target, side="right"))  # first s > target
        if right == 0:
            out[j] = x[0]
        elif right == n:
            out[j] = x[-1]
        else:
            left = right - 1
            out[j] = x[left] + (target - s[left]) * (x[right] - x[left]) / (s[right] - s[left])
    return out


# --- exactextract glue: zones as WKB, results straight into Python dicts ------------------

class _Zone(Feature):
    """One zone handed to exactextract (its WKB), and the holder of its results."""

    def __init__(self, wkb=None):
        Feature.__init__(self)
        self.wkb, self.values = wkb, {}

    def geometry(self):
        return self.wkb

    def set_geometry_format(self):
        return "wkb"

    def set_geometry(self, wkb):
        pass

    def fields(self):
        return []

    def get(self, name):
        return self.values[name]

    def set(self, name, value):
        self.values[name] = value


class _ZoneSource(FeatureSource):
    def __init__(self, indices: np.ndarray, wkbs: np.ndarray):
        super().__init__()
        self.indices, self.wkbs = indices, wkbs

    def count(self):
        return len(self.indices)

    def __iter__(self):
        for wkb in self.wkbs[self.indices]:
            yield _Zone(wkb)

    def srs_wkt(self):
        return None


class _Rows(Writer):
    """Collects exactextract's results as one dict per zone, in the order zones were given."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []

    def add_operation(self, op):
        pass

    def add_column(self, name):
        pass

    def add_geometry(self):
        pass

    def write(self, feature):
        zone = _Zone()
        feature.copy_to(zone)
        self.rows.append(zone.values)

    def features(self):
        return self.rows


# --- the raster side ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """Where the pixels are: a (time, y, x) Dask array, its transform and time labels."""

    array: da.Array
    transform: Affine
    flip: bool  # rows run south → north
    times: list[str | None]
    items: list[str | None]
    series: bool
    nodata: float | None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        return np.datetime_as_string(value, unit="s") + "Z"
    return str(value)


def _layout(data: xr.DataArray) -> _Layout:
    if not isinstance(data, xr.DataArray):
        raise InvalidInput("zonal statistics need an xarray.DataArray (one band or index)")
    if data.ndim not in (2, 3):
        raise InvalidInput(f"zonal statistics need a (y, x) or (time, y, x) array, got dims "
                           f"{data.dims}")
    if data.rio.crs is None:
        raise InvalidInput("the raster has no CRS; write one with data.rio.write_crs(...)")
    y, x = data.rio.y_dim, data.rio.x_dim
    transform = data.rio.transform()
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e == 0:
        raise InvalidInput("zonal statistics need a north-up (or south-up) grid without "
                           f"rotation, x increasing; got transform {tuple(transform)[:6]}")
    times: list[str | None] = [None]
    items: list[str | None] = [None]
    if data.ndim == 3:
        tdim = next(d for d in data.dims if d not in (y, x))
        data = data.transpose(tdim, y, x)
        n = data.sizes[tdim]
        times = [_iso(v) for v in data[tdim].values] if tdim in data.coords else [None] * n
        items = ([str(v) for v in data["id"].values]
                 if "id" in data.coords and data["id"].dims == (tdim,) else [None] * n)
        array = data.data
    else:
        array = data.transpose(y, x).data[None]
    if not isinstance(array, da.Array):
        array = da.from_array(np.asarray(array), chunks=(1, 2048, 2048))
    nodata = data.rio.nodata
    if nodata is not None and np.isnan(nodata):
        nodata = None
    return _Layout(array, transform, transform.e > 0, times, items, data.ndim == 3, nodata)


def _block_bounds(layout: _Layout) -> list[tuple[int, int, tuple[float, float, float, float]]]:
    """(row-block, col-block, (xmin, ymin, xmax, ymax)) of every spatial block, in the pixel
    space of :func:`_to_pixels` (columns right, rows up or down as the raster's y)."""
    rows = np.concatenate([[0], np.cumsum(layout.array.chunks[1])])
    cols = np.concatenate([[0], np.cumsum(layout.array.chunks[2])])
    sign = 1 if layout.flip else -1
    out = []
    for i in range(len(rows) - 1):
        y0, y1 = sign * rows[i], sign * rows[i + 1]
        for j in range(len(cols) - 1):
            out.append((i, j, (float(cols[j]), float(min(y0, y1)), float(cols[j + 1]),
                               float(max(y0, y1)))))
    return out


#: pixel-space coordinates are rounded to multiples of this (≈ 1e-6 pixel, exact in binary)
SNAP = 2.0 ** -20


def _to_pixels(geometries: np.ndarray, transform: Affine) -> np.ndarray:
    """Geometries in pixel units (x = column, y = ±row from the raster's first row), their
    coordinates rounded to :data:`SNAP`.

    Why: an edge that lies on a pixel boundary in theory lands a few nanometres off after a
    reprojection, and exactextract then gives the neighbouring pixel a 1e-10 coverage — enough
    to change ``min``, ``max`` and the quantiles.  In pixel units the boundaries are integers
    and the rounding puts such edges back on them; exactextract also works on small numbers.
    """
    scale = np.array([transform.a, abs(transform.e)])
    origin = np.array([transform.c, transform.f])

    def to_pixel(coords: np.ndarray) -> np.ndarray:
        return np.round((coords - origin) / scale / SNAP) * SNAP

    pixels = shapely.transform(geometries, to_pixel)
    broken = np.flatnonzero(~shapely.is_valid(pixels))
    if len(broken):  # rounding can pinch a ring that nearly touches itself
        pixels[broken] = clean_geometries(pixels[broken])[0]
    return pixels


def _compute_blocks(array: da.Array, keys: list[tuple[int, int, int]],
                    prefetch: int) -> Iterator[np.ndarray]:
    """The blocks of ``array`` in ``keys`` order, computed one at a time with ``prefetch``
    blocks read ahead in a helper thread (Dask's own scheduler does the reading)."""
    def load(key):
        return np.asarray(array.blocks[key].compute())

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zonal-read") as pool:
        pending: deque = deque()
        queue = iter(keys)
        for key in queue:
            pending.append(pool.submit(load, key))
            if len(pending) > prefetch:
                break
        try:
            while pending:
                block = pending.popleft().result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append(pool.submit(load, nxt))
                yield block
        finally:
            for future in pending:
                future.cancel()


# --- accumulation -------------------------------------------------------------------------

class _Accumulator:
    """Running statistics per (zone, date), merged block after block."""

    def __init__(self, n_zones: int, n_times: int, quantiles: tuple[float, ...],
                 dtype: np.dtype):
        shape = (n_zones, n_times)
        self.dtype = dtype  # exactextract returns quantiles in the raster's type
        self.count = np.zeros(shape)
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)
        self.min = np.full(shape, np.inf)
        self.max = np.full(shape, -np.inf)
        self.quantiles = quantiles
        self.qvalues = np.full(shape + (len(quantiles),), np.nan)
        self.pairs: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}

    def merge(self, zones: np.ndarray, t: int, rows: list[dict]) -> None:
        """Fold one block's exactextract rows (for ``zones``, at date ``t``) in."""
        if len(rows) != len(zones):  # exactextract writes every feature, in order
            raise RuntimeError(f"exactextract returned {len(rows)} rows for {len(zones)} zones")
        n_b = np.array([r["count"] for r in rows])
        has = n_b > 0
        if not has.any():
            return
        z, n_b, rows = zones[has], n_b[has], [r for r, h in zip(rows, has) if h]
        mean_b = np.array([r["mean"] for r in rows])
        var_b = np.array([r.get("variance", 0.0) for r in rows])
        n_a, mean_a = self.count[z, t], self.mean[z, t]
        n = n_a + n_b
        delta = mean_b - mean_a
        self.mean[z, t] = mean_a + delta * (n_b / n)
        self.m2[z, t] += var_b * n_b + delta * delta * (n_a * n_b / n)
        self.count[z, t] = n
        if "min" in rows[0]:
            self.min[z, t] = np.minimum(self.min[z, t], [r["min"] for r in rows])
            self.max[z, t] = np.maximum(self.max[z, t], [r["max"] for r in rows])
        if not self.quantiles:
            return
        if "values" in rows[0]:  # zone spans blocks: keep its pairs until its last block
            # exactextract's coverage fractions are float32 inside, and float32 raster values
            # survive the round trip: keep both in single precision (8 bytes per pixel)
            values_dtype = self.dtype if self.dtype == np.float32 else np.float64
            for zone, row in zip(z, rows):
                self.pairs.setdefault((int(zone), t), []).append(
                    (row["values"].astype(values_dtype), row["coverage"].astype(np.float32)))
        else:
            self.qvalues[z, t] = [[r["median"] if q == 0.5 else r[_quantile_field(q)]
                                   for q in self.quantiles] for r in rows]

    def finish_pairs(self, zones: np.ndarray, times: range) -> None:
        for zone in zones:
            for t in times:
                parts = self.pairs.pop((int(zone), t), None)
                if parts:
                    values = np.concatenate([p[0] for p in parts])
                    weights = np.concatenate([p[1] for p in parts])
                    self.qvalues[zone, t] = weighted_quantiles(
                        values, weights, self.quantiles).astype(self.dtype)


def _quantile_field(q: float) -> str:
    return f"quantile_{round(q * 100)}"


def _operations(statistics: tuple[str, ...], spanning: bool) -> list[str]:
    ops = ["count", "mean"]
    if "std" in statistics:
        ops.append("variance")
    if "min" in statistics or "max" in statistics:
        ops += ["min", "max"]
    quantiles = [STATISTICS[s] for s in statistics if STATISTICS[s] is not None]
    if quantiles:
        if spanning:
            ops += ["values", "coverage"]
        else:
            ops += ["median" if q == 0.5 else f"quantile(q={q})" for q in quantiles]
    return ops


# --- the engine ---------------------------------------------------------------------------

def zonal_stats(data: xr.DataArray, zones: Zones,
                statistics: Sequence[str] | str = DEFAULT_STATISTICS, *,
                max_zones: int = MAX_ZONES, min_valid_fraction: float = MIN_VALID_FRACTION,
                min_zone_pixels: float = 1.0,
                prefetch: int = PREFETCH,
                progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Statistics of ``data`` per zone: a list of flat rows (dicts), ready for GeoJSON or CSV.

    ``data`` is a (lazy) ``(y, x)`` array, or ``(time, y, x)`` for a time series, with a CRS
    and transform readable through rioxarray (``data.rio.crs``, ``data.rio.transform()``);
    NaN (or ``data.rio.nodata``) marks invalid pixels.  ``zones`` (any CRS) are reprojected to
    the raster CRS once.  ``statistics`` are names from :data:`STATISTICS` (definitions in the
    module docstring).

    Rows are ``{"id", [series: "datetime", "item"], <statistics in the asked order>,
    "warning"}`` with floats or ``None``:

    * ``(y, x)``: one row per zone, in the order of ``zones``;
    * ``(time, y, x)``: one row per zone and per date that is clear over it — its
      ``valid_fraction`` ≥ ``min_valid_fraction`` (default 0.8: a parcel 20 % under cloud
      still gives a usable mean; use 1.0 for strictly cloud-free, 0 for every date with at
      least part of the zone valid) — zone by zone, dates in the array's order.  A zone with
      no clear date gets one row with ``datetime`` ``None``, ``count`` 0 and a warning.  Each
      row has exactly the values a call on that date's ``(y, x)`` slice gives.

    ``progress``, if given, is called as ``progress(done, total)`` before the first block and
    after each block (``total`` = blocks to read, time chunks × spatial blocks touching a
    zone), from the calling thread: job managers report it, and may cancel the work by
    raising from it.

    Raises :class:`TooLarge` when there are more than ``max_zones`` zones (before reading),
    :class:`InvalidInput` for an unknown statistic or a raster without CRS.
    """
    names = _check_statistics(statistics)
    if len(zones) > max_zones:
        raise TooLarge(
            f"{len(zones):,} zones were given but at most {max_zones:,} can be summarised in "
            "one request; split the zones into several requests (e.g. by commune)")
    if not 0 <= min_valid_fraction <= 1:
        raise InvalidInput(f"min_valid_fraction must lie between 0 and 1, "
                           f"got {min_valid_fraction}")
    layout = _layout(data)
    zones = zones.to_crs(data.rio.crs)
    geoms = _to_pixels(zones.geometries, layout.transform)
    n_zones, n_times = len(zones), layout.array.shape[0]
    quantiles = tuple(STATISTICS[s] for s in names if STATISTICS[s] is not None)
    acc = _Accumulator(n_zones, n_times, quantiles, layout.array.dtype)

    blocks = _block_bounds(layout)
    present = np.flatnonzero(~shapely.is_empty(geoms))
    per_block: dict[tuple[int, int], np.ndarray] = {}
    touches = np.zeros(n_zones, dtype=np.int64)
    if len(present):
        tree = shapely.STRtree(geoms[present])
        boxes = shapely.box(*np.array([b[2] for b in blocks]).T)
        block_idx, zone_idx = tree.query(boxes)
        zone_idx = present[zone_idx]
        order = np.argsort(block_idx, kind="stable")
        block_idx, zone_idx = block_idx[order], zone_idx[order]
        splits = np.searchsorted(block_idx, np.arange(len(blocks) + 1))
        for b, (i, j, _) in enumerate(blocks):
            if splits[b + 1] > splits[b]:
                per_block[(i, j)] = zone_idx[splits[b]:splits[b + 1]]
        touches = np.bincount(zone_idx, minlength=n_zones)
    wkbs = np.empty(n_zones, dtype=object)
    wkbs[present] = shapely.to_wkb(geoms[present])

    ops_single = _operations(names, spanning=False)
    ops_spanning = _operations(names, spanning=True)
    tchunks = np.concatenate([[0], np.cumsum(layout.array.chunks[0])])
    keys = [(tc, i, j) for tc in range(len(tchunks) - 1) for (i, j, _) in blocks
            if (i, j) in per_block]
    bounds = {(i, j): box for i, j, box in blocks}
    remaining, current = touches, -1  # blocks each zone still waits for, in this time chunk
    if progress is not None:
        progress(0, len(keys))
    for n_read, ((tc, i, j), block) in enumerate(
            zip(keys, _compute_blocks(layout.array, keys, prefetch)), start=1):
        if tc != current:
            remaining, current = touches.copy(), tc
        candidates = per_block[(i, j)]
        groups = [(candidates, ops_single)]
        if quantiles:
            spans = touches[candidates] > 1
            groups = [(candidates[~spans], ops_single), (candidates[spans], ops_spanning)]
        xmin, ymin, xmax, ymax = bounds[(i, j)]
        for k in range(block.shape[0]):
            plane = block[k][::-1] if layout.flip else block[k]
            source = NumPyRasterSource(plane, xmin, ymin, xmax, ymax, nodata=layout.nodata)
            for members, ops in groups:
                if len(members):
                    # feature-sequential: one row per zone, in the order given
                    rows = exact_extract(source, _ZoneSource(members, wkbs), ops,
                                         output=_Rows())
                    acc.merge(members, tchunks[tc] + k, rows)
        remaining[candidates] -= 1
        if quantiles:
            done = candidates[(remaining[candidates] == 0) & (touches[candidates] > 1)]
            acc.finish_pairs(done, range(tchunks[tc], tchunks[tc + 1]))
        if progress is not None:
            progress(n_read, len(keys))

    return _rows(acc, zones, names, layout, shapely.area(geoms), min_valid_fraction,
                 min_zone_pixels)


def _value(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _rows(acc: _Accumulator, zones: Zones, names: tuple[str, ...], layout: _Layout,
          zone_pixels: np.ndarray, min_valid_fraction: float,
          min_zone_pixels: float = 1.0) -> list[dict]:
    tiny = (zone_pixels > 0) & (zone_pixels < min_zone_pixels)
    acc.count[tiny] = 0  # smaller than a pixel: reported with count 0, never summarised
    warnings = [
        zones.warnings[z] or (f"zone smaller than {min_zone_pixels:g} pixel "
                              f"({zone_pixels[z]:.2f} px): no statistic" if tiny[z] else None)
        for z in range(len(zones))]
    with np.errstate(divide="ignore", invalid="ignore"):
        # coverage fractions are float32 inside exactextract: round to 1e-6 so that a zone
        # fully on valid pixels gets exactly 1
        valid = np.where(zone_pixels[:, None] > 0,
                         np.round(np.minimum(acc.count / zone_pixels[:, None], 1.0), 6), 0.0)
        std = np.sqrt(np.maximum(acc.m2 / acc.count, 0.0))
    qcol = {s: acc.quantiles.index(STATISTICS[s]) for s in names if STATISTICS[s] is not None}
    out: list[dict] = []
    clear = (acc.count > 0) & (valid >= min_valid_fraction)
    for z, zone_id in enumerate(zones.ids):
        dates = np.flatnonzero(clear[z]) if layout.series else [0]
        if not len(dates):  # series: no clear date over this zone
            row = {"id": zone_id, "datetime": None, "item": None}
            row.update({s: (0.0 if s in ("count", "valid_fraction") else None) for s in names})
            note = warnings[z] or (
                f"no date with at least {min_valid_fraction:.0%} of the zone clear")
            row["warning"] = note
            out.append(row)
            continue
        for t in dates:
            row = {"id": zone_id}
            if layout.series:
                row["datetime"], row["item"] = layout.times[t], layout.items[t]
            n = acc.count[z, t]
            for s in names:
                if s == "count":
                    row[s] = float(n)
                elif s == "valid_fraction":
                    row[s] = float(valid[z, t])
                elif n <= 0:
                    row[s] = None
                elif s == "mean":
                    row[s] = _value(acc.mean[z, t])
                elif s == "sum":
                    row[s] = _value(acc.mean[z, t] * n)
                elif s == "std":
                    row[s] = _value(std[z, t])
                elif s == "min":
                    row[s] = _value(acc.min[z, t])
                elif s == "max":
                    row[s] = _value(acc.max[z, t])
                else:
                    row[s] = _value(acc.qvalues[z, t, qcol[s]])
            row["warning"] = warnings[z] or (
                None if n > 0 else "no valid pixel (zone outside the data, or masked)")
            out.append(row)
    return out
