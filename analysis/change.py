"""Change detection between two index rasters (before / after): pure functions, no I/O.

The pipeline is ``detect_change`` (lazy: the difference and a class per pixel) → ``sieve``
(connected components smaller than a minimum area become *stable*) → ``change_polygons``
(one polygon per remaining component, with its area and mean values).  Connected components
need the whole class raster, so ``sieve`` and ``change_polygons`` work on computed numpy
arrays; everything before them stays lazy.

Definitions (index values are unitless, e.g. NDVI):

* ``difference``: ``delta = after − before``; loss where ``delta ≤ −threshold``, gain where
  ``delta ≥ threshold``.  Default threshold **0.2**: on the sample data the difference between
  two clear dates a month apart over unchanged land stays within ±0.13 (noise, slow
  phenology), while clearing forest or building over grassland moves NDVI by −0.7; 0.2 is
  also the usual order of magnitude in the literature for NDVI-difference change maps.
* ``relative``: ``delta = (after − before) / |before|`` (a fraction); default threshold
  **0.3** (a 30 % drop or rise).  Pixels where ``|before| < 0.05`` have no relative change
  (NaN: dividing by a near-zero index is meaningless).

Class codes (``CHANGE_CLASSES``): 0 no data (either date masked or outside the area),
1 stable, 2 loss, 3 gain.  Components are 4-connected (pixels sharing an edge), the same
connectivity ``rasterio.features.shapes`` uses, so every polygon holds at least the minimum
area.  In farmland, crop cycles (harvest, mowing) are real NDVI losses between two dates: pick
the dates (or a composite of each season) so that the change you look for is the dominant one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS, Geod, Transformer
from rasterio.features import shapes
from scipy import ndimage

from sentinelle.errors import InvalidInput

NODATA, STABLE, LOSS, GAIN = 0, 1, 2, 3
CHANGE_CLASSES: Mapping[int, Mapping[str, str]] = MappingProxyType({
    NODATA: {"en": "no data", "fr": "pas de donnée"},
    STABLE: {"en": "stable", "fr": "stable"},
    LOSS: {"en": "loss", "fr": "perte"},
    GAIN: {"en": "gain", "fr": "gain"},
})
#: class code → RGB (loss red, gain green, stable light grey); no data is transparent
CHANGE_COLOURS: Mapping[int, tuple[int, int, int]] = MappingProxyType({
    STABLE: (225, 225, 225), LOSS: (200, 30, 30), GAIN: (20, 140, 50),
})
METHODS = ("difference", "relative")
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType({"difference": 0.2,
                                                             "relative": 0.3})
#: below this |before| the relative change is undefined (NaN)
MIN_RELATIVE_BASE = 0.05
#: a 4-connected structuring element (edges only)
FOUR = ndimage.generate_binary_structure(2, 1)


def _check(method: str, threshold: float | None) -> float:
    if method not in METHODS:
        raise InvalidInput(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    if threshold is None:
        return DEFAULT_THRESHOLDS[method]
    threshold = float(threshold)
    if not math.isfinite(threshold) or threshold <= 0:
        raise InvalidInput(f"threshold: must be a positive number, got {threshold!r}")
    return threshold


def index_change(before: xr.DataArray, after: xr.DataArray, *,
                 method: str = "difference") -> xr.DataArray:
    """``after − before`` (``difference``) or ``(after − before) / |before|`` (``relative``),
    lazy float32, NaN where either date has no value.  Both arrays must share their grid."""
    _check(method, None)
    if before.shape != after.shape:
        raise InvalidInput(f"before and after rasters differ in shape: {before.shape} vs "
                           f"{after.shape}; read them on the same grid")
    before, after = xr.align(before, after, join="exact") if "x" in before.coords else \
        (before, after)
    delta = after - before
    if method == "relative":
        base = abs(before)
        delta = (delta / base).where(base >= MIN_RELATIVE_BASE)
    return delta.astype("float32").rename("delta")


def classify_change(delta: xr.DataArray, threshold: float) -> xr.DataArray:
    """uint8 classes from a change raster: 2 loss (≤ −threshold), 3 gain (≥ threshold),
    1 stable, 0 no data (NaN).  Lazy."""
    threshold = _check("difference", threshold)
    classes = xr.where(delta <= -threshold, LOSS, xr.where(delta >= threshold, GAIN, STABLE))
    classes = xr.where(np.isfinite(delta), classes, NODATA).astype("uint8")
    return classes.rename("change")


def detect_change(before: xr.DataArray, after: xr.DataArray, *, threshold: float | None = None,
                  method: str = "difference") -> xr.Dataset:
    """Lazy dataset with ``delta`` (float32), ``change`` (uint8 classes, see the module
    docstring), ``before`` and ``after`` (the index values); CRS and attributes of ``before``
    kept, the threshold and method in ``attrs``."""
    threshold = _check(method, threshold)
    delta = index_change(before, after, method=method)
    change = classify_change(delta, threshold)
    out = xr.Dataset({"delta": delta, "change": change,
                      "before": before.astype("float32"), "after": after.astype("float32")})
    out.attrs = {"threshold": threshold, "method": method}
    if before.rio.crs is not None:
        out = out.rio.write_crs(before.rio.crs).rio.write_transform(before.rio.transform())
    return out


def min_pixels(min_area_ha: float, pixel_area_m2: float) -> int:
    """Pixels a component needs to reach ``min_area_ha`` (at least 1)."""
    if min_area_ha < 0 or not math.isfinite(min_area_ha):
        raise InvalidInput(f"min_area_ha: must be zero or a positive number, got {min_area_ha}")
    return max(1, math.ceil(min_area_ha * 10_000 / pixel_area_m2 - 1e-9))


def label_changes(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-connected components of loss and of gain: (labels int32, 0 = none; class code of
    each label, index 0 unused)."""
    labels = np.zeros(classes.shape, dtype="int32")
    kinds = [NODATA]
    for code in (LOSS, GAIN):
        where = classes == code
        if not where.any():
            continue
        if len(kinds) == 1:  # the first class labels straight into the output
            n = ndimage.label(where, structure=FOUR, output=labels)
        else:
            lab, n = ndimage.label(where, structure=FOUR)
            labels[where] = lab[where] + (len(kinds) - 1)
            del lab
        kinds.extend([code] * n)
    return labels, np.array(kinds, dtype="uint8")


def sieve(classes: np.ndarray, min_pixels: int) -> np.ndarray:
    """Loss/gain components smaller than ``min_pixels`` set to stable (a new array)."""
    classes = np.asarray(classes)
    out = classes.copy()
    if min_pixels <= 1 or not ((classes == LOSS).any() or (classes == GAIN).any()):
        return out
    labels, _ = label_changes(classes)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_pixels
    small[0] = False
    out[small[labels]] = STABLE
    return out


def pixel_area_m2(transform: Affine, crs: CRS | None) -> float:
    """Area of one pixel in m² (projected CRSs in metres; for geographic CRSs the area at the
    raster's first row is a rough figure — polygons get their geodesic area instead)."""
    area = abs(transform.a * transform.e - transform.b * transform.d)
    if crs is not None and crs.is_geographic:
        lat = math.radians(transform.f)
        return area * 111_320.0 ** 2 * math.cos(lat)
    return area


def _areas_ha(geoms: np.ndarray, crs: CRS | None, transform: Affine,
              counts: np.ndarray) -> np.ndarray:
    if crs is not None and crs.is_geographic:
        geod = Geod(ellps="WGS84")
        return np.array([abs(geod.geometry_area_perimeter(g)[0]) / 10_000 for g in geoms])
    return counts * pixel_area_m2(transform, crs) / 10_000


def change_polygons(classes: np.ndarray, delta: np.ndarray, before: np.ndarray,
                    after: np.ndarray | None = None, *, transform: Affine, crs: CRS | None,
                    method: str = "difference", to_crs: CRS | str | None = "OGC:CRS84",
                    digits: int = 7) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the loss and gain components of ``classes`` (already
    sieved), in ``to_crs`` (default CRS84 as GeoJSON wants; ``None`` keeps the raster CRS).

    Properties: ``id``, ``type`` (``loss``/``gain``), ``area_ha`` (pixel count × pixel area;
    geodesic for geographic rasters), ``pixels``, ``mean_delta``, ``before``, ``after`` (mean
    index over the component), sorted by decreasing area.  ``after`` may be left out: it is
    rebuilt from ``before`` and ``delta`` (``method``) on the changed pixels only, which
    keeps memory proportional to the changes.
    """
    labels, kinds = label_changes(classes)
    n = len(kinds) - 1
    features: list[dict] = []
    if n == 0:
        return {"type": "FeatureCollection", "features": features}
    changed = np.flatnonzero(labels)
    flat = labels.ravel()[changed]
    counts = np.bincount(flat, minlength=n + 1).astype("float64")
    b = np.asarray(before).ravel()[changed].astype("float64")
    d = np.asarray(delta).ravel()[changed].astype("float64")
    if after is not None:
        a = np.asarray(after).ravel()[changed].astype("float64")
    else:
        a = b + d if method == "difference" else b + d * np.abs(b)

    def mean_of(v: np.ndarray) -> np.ndarray:
        ok = np.isfinite(v)
        sums = np.bincount(flat[ok], weights=v[ok], minlength=n + 1)
        num = np.bincount(flat[ok], minlength=n + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / num

    means = {"mean_delta": mean_of(d), "before": mean_of(b), "after": mean_of(a)}
    del b, d, a, changed
    parts: dict[int, list] = {}
    for geometry, value in shapes(labels, mask=labels > 0, transform=transform,
                                  connectivity=4):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geometry))
    ids = np.array(sorted(parts))
    geoms = np.array([p[0] if len(p) == 1 else shapely.union_all(p)
                      for p in (parts[i] for i in ids)], dtype=object)
    areas = _areas_ha(geoms, crs, transform, counts[ids])  # on the raster grid
    if to_crs is not None and crs is not None:
        target = CRS.from_user_input(to_crs)
        if target != crs:
            transformer = Transformer.from_crs(crs, target, always_xy=True)
            geoms = shapely.transform(geoms, transformer.transform, interleaved=False)
    if digits is not None:
        geoms = shapely.set_precision(geoms, 10 ** -digits)
    order = np.argsort(-areas, kind="stable")
    for rank, k in enumerate(order, start=1):
        label = ids[k]
        features.append({
            "type": "Feature", "id": rank,
            "geometry": shapely.geometry.mapping(geoms[k]),
            "properties": {
                "id": rank, "type": CHANGE_CLASSES[int(kinds[label])]["en"],
                "area_ha": round(float(areas[k]), 4), "pixels": int(counts[label]),
                **{key: _round(values[label]) for key, values in means.items()},
            },
        })
    return {"type": "FeatureCollection", "features": features}


def _round(value: float, digits: int = 4) -> float | None:
    return None if not math.isfinite(value) else round(float(value), digits)


@dataclass(frozen=True)
class ChangeSummary:
    """Areas (ha) per class of a (sieved) change raster."""

    loss_ha: float
    gain_ha: float
    stable_ha: float
    nodata_ha: float

    def as_dict(self) -> dict[str, float]:
        return {"loss_ha": _round(self.loss_ha), "gain_ha": _round(self.gain_ha),
                "changed_ha": _round(self.loss_ha + self.gain_ha),
                "stable_ha": _round(self.stable_ha), "nodata_ha": _round(self.nodata_ha)}


def summarise(classes: np.ndarray, pixel_area_m2_: float, *,
              inside: np.ndarray | None = None) -> ChangeSummary:
    """Class areas in ha; ``inside`` (bool) restricts no data to the area's pixels."""
    classes = np.asarray(classes)
    # one pass per class: bincount would first copy the uint8 raster to int64 (8 × memory)
    counts = np.array([np.count_nonzero(classes == code) for code in range(4)],
                      dtype="float64")
    if inside is not None:
        counts[NODATA] = float(np.count_nonzero((classes == NODATA) & inside))
    ha = counts * pixel_area_m2_ / 10_000
    return ChangeSummary(ha[LOSS], ha[GAIN], ha[STABLE], ha[NODATA])


def class_indicator(classes: xr.DataArray, code: int, pixel_area_m2_: float) -> xr.DataArray:
    """Hectares per pixel of class ``code`` (pixel area where it is, 0 elsewhere, NaN where no
    data): its zonal ``sum`` is the class area (ha) of a zone, exact at zone edges."""
    value = pixel_area_m2_ / 10_000
    out = xr.where(classes == code, value, 0.0).where(classes != NODATA)
    return out.astype("float32").rio.write_crs(classes.rio.crs) \
        .rio.write_transform(classes.rio.transform())


def summarise_zones(classes: xr.DataArray, zones, pixel_area_m2_: float) -> list[dict]:
    """Loss and gain area (ha) per zone with the zonal engine (exact coverage fractions):
    rows ``{id, loss_ha, gain_ha, changed_ha, valid_fraction, warning}``."""
    from sentinelle.analysis.zonal import zonal_stats

    loss = zonal_stats(class_indicator(classes, LOSS, pixel_area_m2_), zones,
                       ["sum", "valid_fraction"])
    gain = zonal_stats(class_indicator(classes, GAIN, pixel_area_m2_), zones, ["sum"])
    rows = []
    for lr, gr in zip(loss, gain):
        lo, ga = lr["sum"], gr["sum"]
        rows.append({"id": lr["id"], "loss_ha": _round(lo) if lo is not None else None,
                     "gain_ha": _round(ga) if ga is not None else None,
                     "changed_ha": _round(lo + ga) if lo is not None and ga is not None
                     else None,
                     "valid_fraction": lr["valid_fraction"], "warning": lr["warning"]})
    return rows


__all__ = [
    "CHANGE_CLASSES", "CHANGE_COLOURS", "ChangeSummary", "DEFAULT_THRESHOLDS", "GAIN", "LOSS",
    "METHODS", "NODATA", "STABLE", "change_polygons", "class_indicator", "classify_change",
    "detect_change", "index_change", "label_changes", "min_pixels", "pixel_area_m2", "sieve",
    "summarise", "summarise_zones",
]
