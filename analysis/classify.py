"""Land-cover classification of a reflectance composite: pure functions, no I/O.

Three methods, one output: a uint8 class raster (0 = no data) and a :class:`Legend`.

* **rules** (:func:`classify_rules`): thresholds on spectral indices, in this order (a later
  rule wins):

  ======================  ======================================  =========================
  class                   rule                                    why
  ======================  ======================================  =========================
  2 bare soil / built-up  NDVI < 0.2                              no green vegetation
  3 sparse vegetation     0.2 ≤ NDVI < 0.35                       some green cover
  4 grassland / crop      0.35 ≤ NDVI < 0.82                      dense herbaceous cover
  5 trees                 NDVI ≥ 0.82 and NDMI ≥ 0.2              dense, moist canopy
  1 water                 NDWI (McFeeters) > 0                    water reflects more green
                                                                  than NIR
  ======================  ======================================  =========================

  The thresholds were chosen on the sample data's ground truth (and are in the usual ranges
  of the literature): NDVI 0.2 separates soil and buildings (≈0.1) from vegetation; 0.35
  separates savanna (≈0.3–0.45 in the dry season) from pasture and crops in growth
  (≥ 0.5), a compromise: no single date separates both everywhere; trees keep NDVI ≈ 0.85–0.9
  in leaf-on season while grassland stays ≤ 0.8 once mown — so **use a clear summer date or
  a short summer composite** (leaf on, after the first cut): on 2024-06-11 in Brittany and
  2024-10-21 in Guiana the rules agree with the truth on ≥ 95 % of the pixels; in spring
  (grass at its peak) grassland looks like trees.  Bare soil and built-up share one class:
  their indices overlap (NDBI needs SWIR and still confuses them).
* **kmeans** (:func:`fit_kmeans`, :func:`predict`): unsupervised clusters of the
  standardised features, numbered by increasing mean NDVI so that the numbering is stable.
* **random-forest** (:func:`fit_random_forest`, :func:`predict`): supervised, trained on
  pixels under training polygons (:func:`rasterize_training`).

Features (:func:`features`) are the reflectances plus NDVI, NDWI and NDMI.  Fitting a model
reads a sample of pixels (it computes: a model cannot be fitted lazily); applying it is lazy,
block by block.  Seeds are fixed, so a request always gives the same classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import dask.array as dsa
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from sentinelle.analysis.indices import compute_index
from sentinelle.errors import InvalidInput

#: bands every method uses (the rules need green, red, nir, swir16)
BANDS = ("blue", "green", "red", "nir", "swir16")
INDEX_FEATURES = ("NDVI", "NDWI", "NDMI")
DEFAULT_SEED = 0
#: pixels read to fit k-means (a random sample of the valid pixels)
KMEANS_SAMPLE = 200_000
#: training pixels per class at most (a random sample under the polygons)
TRAINING_PER_CLASS = 20_000

WATER, BARE_BUILT, SPARSE, GRASS_CROP, TREES = 1, 2, 3, 4, 5
RULES: Mapping[str, float] = MappingProxyType({
    "water_ndwi": 0.0,      # NDWI above: water
    "bare_ndvi": 0.2,       # NDVI below: bare soil / built-up
    "sparse_ndvi": 0.35,    # NDVI below: sparse vegetation
    "tree_ndvi": 0.82,      # NDVI at or above (and NDMI ≥ tree_ndmi): trees
    "tree_ndmi": 0.2,
})

#: a qualitative palette for classes without their own colour (k-means, training names)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
           (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150),
           (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229))


@dataclass(frozen=True)
class Legend:
    """Class code → names (``{"en", "fr"}``) and colour; code 0 is always "no data"."""

    names: Mapping[int, Mapping[str, str]]
    colours: Mapping[int, tuple[int, int, int]]
    source_values: Mapping[int, Any] = field(default_factory=dict)  # training class values

    def name(self, code: int, lang: str = "en") -> str:
        return self.names[code].get(lang) or self.names[code]["en"]

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """A GDAL colour table (no data transparent)."""
        table = {0: (0, 0, 0, 0)}
        table.update({code: (*rgb, 255) for code, rgb in self.colours.items()})
        return table

    def as_list(self) -> list[dict]:
        return [{"code": code, "name": dict(self.names[code]),
                 "colour": "#%02x%02x%02x" % self.colours[code],
                 **({"value": self.source_values[code]} if code in self.source_values
                    else {})}
                for code in sorted(self.names)]


RULES_LEGEND = Legend(
    names=MappingProxyType({
        WATER: {"en": "water", "fr": "eau"},
        BARE_BUILT: {"en": "bare soil / built-up", "fr": "sol nu / bâti"},
        SPARSE: {"en": "sparse vegetation", "fr": "végétation clairsemée"},
        GRASS_CROP: {"en": "grassland / crop", "fr": "prairie / culture"},
        TREES: {"en": "trees", "fr": "arbres"},
    }),
    colours=MappingProxyType({
        WATER: (46, 117, 182), BARE_BUILT: (200, 80, 60), SPARSE: (190, 190, 120),
        GRASS_CROP: (170, 215, 80), TREES: (20, 110, 40),
    }),
)


# --- features --------------------------------------------------------------------------------

def _check_bands(ds: xr.Dataset, bands: Iterable[str]) -> None:
    missing = [b for b in bands if b not in ds]
    if missing:
        raise InvalidInput(f"classification needs the band(s) {', '.join(missing)}")


def features(ds: xr.Dataset, bands: Sequence[str] = BANDS,
             indices: Sequence[str] = INDEX_FEATURES) -> xr.DataArray:
    """Lazy ``(feature, y, x)`` float32 stack: the reflectances then the indices."""
    _check_bands(ds, bands)
    layers = [ds[b].astype("float32") for b in bands]
    layers += [compute_index(ds, name) for name in indices]
    names = list(bands) + list(indices)
    stack = xr.concat([layer.drop_vars([c for c in layer.coords if c not in ("x", "y")])
                       for layer in layers], dim="feature")
    stack = stack.assign_coords(feature=names)
    if stack.chunks:
        stack = stack.chunk({"feature": -1})
    return stack.rename("features")


def _georef(out: xr.DataArray, like: xr.Dataset | xr.DataArray) -> xr.DataArray:
    try:
        crs, transform = like.rio.crs, like.rio.transform()
    except Exception:  # no georeferencing (plain arrays in tests)
        return out
    if crs is not None:
        out = out.rio.write_crs(crs)
    return out.rio.write_transform(transform)


# --- rules -----------------------------------------------------------------------------------

def classify_rules(ds: xr.Dataset, thresholds: Mapping[str, float] | None = None) -> xr.DataArray:
    """Rule-based classes (uint8, 0 = no data), lazy; see the module docstring."""
    t = dict(RULES, **(thresholds or {}))
    unknown = set(t) - set(RULES)
    if unknown:
        raise InvalidInput(f"thresholds: unknown key(s) {', '.join(sorted(unknown))}; "
                           f"use {', '.join(RULES)}")
    _check_bands(ds, ("green", "red", "nir", "swir16"))
    ndvi = compute_index(ds, "NDVI")
    ndwi = compute_index(ds, "NDWI")
    ndmi = compute_index(ds, "NDMI")
    classes = xr.where(ndvi < t["bare_ndvi"], BARE_BUILT,
                       xr.where(ndvi < t["sparse_ndvi"], SPARSE, GRASS_CROP))
    classes = xr.where((ndvi >= t["tree_ndvi"]) & (ndmi >= t["tree_ndmi"]), TREES, classes)
    classes = xr.where(ndwi > t["water_ndwi"], WATER, classes)
    valid = np.isfinite(ndvi) & np.isfinite(ndwi) & np.isfinite(ndmi)
    out = xr.where(valid, classes, 0).astype("uint8").rename("class")
    out.attrs = {"method": "rules"}
    return _georef(out, ds)


def tree_cover(ds: xr.Dataset) -> xr.DataArray:
    """Tree mask from the rules: 1.0 trees, 0.0 anything else, NaN no data (float32, lazy).

    Its zonal mean is the tree fraction of a zone (exact at zone edges with the zonal
    engine); its ``sum`` × pixel area the tree area.  Use a leaf-on composite.
    """
    classes = classify_rules(ds)
    out = xr.where(classes == TREES, 1.0, 0.0).where(classes != 0).astype("float32")
    out = out.rename("tree_cover")
    out.attrs = {"units": "1", "description": "1 = trees (rules classification), 0 = other"}
    return _georef(out, ds)


# --- models ----------------------------------------------------------------------------------

def _valid_rows(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values).all(axis=1)


def sample_pixels(stack: xr.DataArray, n: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Up to ``n`` random valid pixels of a ``(feature, y, x)`` stack as ``(n, features)``
    float64.  Computes (reads the stack once, a block at a time)."""
    rng = np.random.default_rng(seed)
    data = stack.data

    def pick(block: np.ndarray, fraction: float, block_seed: int) -> np.ndarray:
        rows = block.reshape(block.shape[0], -1).T
        rows = rows[_valid_rows(rows)]
        if fraction < 1 and len(rows):
            keep = np.random.default_rng(block_seed).random(len(rows)) < fraction
            rows = rows[keep]
        return rows.astype("float64")

    total = stack.shape[1] * stack.shape[2]
    fraction = min(1.0, 1.5 * n / max(total, 1))
    if isinstance(data, dsa.Array):
        import dask

        blocks = data.to_delayed().ravel()
        seeds = rng.integers(0, 2**31, len(blocks))
        parts = dask.compute(*[dask.delayed(pick)(b, fraction, int(s))
                               for b, s in zip(blocks, seeds)])
        rows = np.concatenate(parts) if parts else np.empty((0, stack.shape[0]))
    else:
        rows = pick(np.asarray(data), fraction, int(rng.integers(0, 2**31)))
    if len(rows) > n:
        rows = rows[rng.choice(len(rows), n, replace=False)]
    return rows


class _Standardised:
    """Mean/std scaling learnt from a sample (so features of different ranges weigh alike)."""

    def __init__(self, sample: np.ndarray):
        self.mean = sample.mean(axis=0)
        self.std = sample.std(axis=0)
        self.std[self.std == 0] = 1.0

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return (rows - self.mean) / self.std


@dataclass
class Model:
    """A fitted classifier: ``predict_rows`` maps ``(n, features)`` rows to class codes."""

    method: str
    legend: Legend
    estimator: Any
    scale: _Standardised | None = None
    codes: np.ndarray | None = None  # estimator label → class code
    info: dict = field(default_factory=dict)

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        x = self.scale(rows) if self.scale is not None else rows
        labels = self.estimator.predict(x)
        return self.codes[labels] if self.codes is not None else labels


def fit_kmeans(stack: xr.DataArray, n_classes: int = 6, *, seed: int = DEFAULT_SEED,
               sample_size: int = KMEANS_SAMPLE) -> Model:
    """k-means (scikit-learn, k-means++ with a fixed seed) on a sample of the standardised
    features; clusters numbered 1…k by increasing mean NDVI.  Computes a sample."""
    from sklearn.cluster import KMeans

    if not 2 <= int(n_classes) <= 20:
        raise InvalidInput(f"n_classes: must be between 2 and 20, got {n_classes}")
    n_classes = int(n_classes)
    sample = sample_pixels(stack, sample_size, seed)
    if len(sample) < n_classes:
        raise InvalidInput(f"only {len(sample)} valid pixel(s): too few for {n_classes} "
                           "clusters; widen the area or the datetime interval")
    scale = _Standardised(sample)
    km = KMeans(n_clusters=n_classes, n_init=4, random_state=seed).fit(scale(sample))
    centres = km.cluster_centers_ * scale.std + scale.mean
    names = list(stack["feature"].values)
    ndvi_col = names.index("NDVI") if "NDVI" in names else 0
    order = np.argsort(centres[:, ndvi_col], kind="stable")
    codes = np.empty(n_classes, dtype="uint8")
    codes[order] = np.arange(1, n_classes + 1)
    legend = Legend(
        names={int(codes[i]): {
            "en": f"cluster {codes[i]} (NDVI {centres[i, ndvi_col]:.2f})",
            "fr": f"groupe {codes[i]} (NDVI {centres[i, ndvi_col]:.2f})"}
            for i in range(n_classes)},
        colours={k: PALETTE[(k - 1) % len(PALETTE)] for k in range(1, n_classes + 1)},
    )
    return Model("kmeans", legend, km, scale, codes,
                 {"sample_pixels": int(len(sample)), "seed": seed,
                  "centres": {int(codes[i]): dict(zip(names, np.round(centres[i], 4).tolist()))
                              for i in range(n_classes)}})


def training_codes(values: Sequence[Any]) -> tuple[dict[Any, int], Legend]:
    """Class code per distinct training value: integers 1–254 keep their value, anything else
    (names) is numbered 1…k in sorted order."""
    distinct = sorted(set(values), key=lambda v: (not isinstance(v, (int, np.integer)), str(v)))
    if len(distinct) < 2:
        raise InvalidInput(f"training: at least two classes are needed, got "
                           f"{len(distinct)} ({', '.join(map(repr, distinct)) or 'none'})")
    if len(distinct) > 254:
        raise InvalidInput(f"training: at most 254 classes, got {len(distinct)}")
    integers = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   and 1 <= v <= 254 for v in distinct)
    mapping = {v: int(v) if integers else i for i, v in enumerate(distinct, start=1)}
    legend = Legend(
        names={code: {"en": str(value), "fr": str(value)} for value, code in mapping.items()},
        colours={code: PALETTE[(i) % len(PALETTE)]
                 for i, code in enumerate(sorted(mapping.values()))},
        source_values={code: value for value, code in mapping.items()},
    )
    return mapping, legend


def rasterize_training(geometries: Sequence[Any], codes: Sequence[int], *,
                       transform, shape: tuple[int, int]) -> np.ndarray:
    """uint8 labels on the grid (0 outside every polygon): pixels whose centre is in a
    polygon take its code; geometries must already be in the grid's CRS.  Later polygons win
    where they overlap."""
    from rasterio.features import rasterize

    pairs = [(g, int(c)) for g, c in zip(geometries, codes) if g is not None and not g.is_empty]
    if not pairs:
        return np.zeros(shape, dtype="uint8")
    return rasterize(pairs, out_shape=shape, transform=transform, fill=0, dtype="uint8")


def fit_random_forest(stack: xr.DataArray, labels: np.ndarray, legend: Legend, *,
                      seed: int = DEFAULT_SEED, per_class: int = TRAINING_PER_CLASS,
                      n_estimators: int = 100) -> Model:
    """A random forest (scikit-learn, fixed seed) on the pixels under ``labels`` (> 0), at
    most ``per_class`` random pixels per class.  Computes the features under the labels."""
    from sklearn.ensemble import RandomForestClassifier

    labels = np.asarray(labels)
    if labels.shape != tuple(stack.shape[1:]):
        raise InvalidInput("training labels and features are on different grids")
    rows_idx, cols_idx = np.nonzero(labels)
    if not len(rows_idx):
        raise InvalidInput("training: no training polygon covers a pixel centre of the area; "
                           "give polygons inside the area, larger than a pixel")
    rng = np.random.default_rng(seed)
    keep = []
    for code in np.unique(labels[rows_idx, cols_idx]):
        where = np.flatnonzero(labels[rows_idx, cols_idx] == code)
        if len(where) > per_class:
            where = rng.choice(where, per_class, replace=False)
        keep.append(where)
    keep = np.sort(np.concatenate(keep))
    rows_idx, cols_idx = rows_idx[keep], cols_idx[keep]
    # read only the bounding window of the training pixels
    r0, r1, c0, c1 = rows_idx.min(), rows_idx.max() + 1, cols_idx.min(), cols_idx.max() + 1
    window = np.asarray(stack[:, r0:r1, c0:c1].values, dtype="float64")
    x = window[:, rows_idx - r0, cols_idx - c0].T
    y = labels[rows_idx, cols_idx]
    ok = _valid_rows(x)
    x, y = x[ok], y[ok]
    present = np.unique(y)
    if len(present) < 2:
        raise InvalidInput("training: fewer than two classes have valid (cloud-free) pixels "
                           "under their polygons; move the polygons or change the dates")
    forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1,
                                    min_samples_leaf=2).fit(x, y)
    missing = sorted(set(legend.names) - set(int(v) for v in present))
    info = {"training_pixels": {legend.name(int(c)): int((y == c).sum()) for c in present},
            "seed": seed, "n_estimators": n_estimators}
    if missing:
        info["classes_without_pixels"] = [legend.name(c) for c in missing]
    return Model("random-forest", legend, forest, None, None, info)


def predict(stack: xr.DataArray, model: Model) -> xr.DataArray:
    """Lazy uint8 classes (0 where any feature is NaN) from a fitted model, block by block."""

    def block_predict(block: np.ndarray) -> np.ndarray:
        rows = block.reshape(block.shape[0], -1).T.astype("float64")
        out = np.zeros(len(rows), dtype="uint8")
        ok = _valid_rows(rows)
        if ok.any():
            out[ok] = model.predict_rows(rows[ok])
        return out.reshape(block.shape[1:])

    data = stack.data
    if isinstance(data, dsa.Array):
        values = dsa.map_blocks(block_predict, data.rechunk({0: -1}), drop_axis=0,
                                dtype="uint8")
    else:
        values = block_predict(np.asarray(data))
    out = xr.DataArray(values, dims=("y", "x"),
                       coords={k: v for k, v in stack.coords.items() if k in ("x", "y")},
                       name="class", attrs={"method": model.method})
    return _georef(out, stack)


# --- results ---------------------------------------------------------------------------------

def class_areas(classes: np.ndarray, legend: Legend, pixel_area_m2: float) -> list[dict]:
    """Area (ha) and share of the classified pixels per class of the legend, in code order."""
    classes = np.asarray(classes)
    counts = {code: np.count_nonzero(classes == code) for code in legend.names}
    total = np.count_nonzero(classes)
    return [{"code": code, "name": legend.name(code), "name_fr": legend.name(code, "fr"),
             "area_ha": round(float(counts[code] * pixel_area_m2 / 10_000), 4),
             "fraction": round(float(counts[code] / total), 6) if total else 0.0}
            for code in sorted(legend.names)]


def class_areas_by_zone(classes: xr.DataArray, legend: Legend, zones,
                        pixel_area_m2: float) -> list[dict]:
    """Area (ha) of each class per zone with the zonal engine (exact coverage fractions):
    rows ``{id, <class name>: ha…, valid_fraction, warning}``."""
    from sentinelle.analysis.zonal import zonal_stats

    value = pixel_area_m2 / 10_000
    rows: list[dict] | None = None
    for code in sorted(legend.names):
        indicator = xr.where(classes == code, value, 0.0).where(classes != 0)
        indicator = _georef(indicator.astype("float32"), classes)
        stats = zonal_stats(indicator, zones, ["sum", "valid_fraction"])
        if rows is None:
            rows = [{"id": s["id"], "areas_ha": {}, "valid_fraction": s["valid_fraction"],
                     "warning": s["warning"]} for s in stats]
        for row, s in zip(rows, stats):
            row["areas_ha"][legend.name(code)] = (None if s["sum"] is None
                                                  else round(s["sum"], 4))
    return rows or []


def accuracy(predicted: np.ndarray, truth: np.ndarray, *,
             mask: np.ndarray | None = None) -> float:
    """Overall accuracy (share of pixels where both agree) over pixels with a class in both
    (and in ``mask``)."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    valid = (predicted > 0) & (truth > 0)
    if mask is not None:
        valid &= mask
    n = int(valid.sum())
    return float((predicted[valid] == truth[valid]).mean()) if n else math.nan


__all__ = [
    "BANDS", "Legend", "Model", "RULES", "RULES_LEGEND", "accuracy", "class_areas",
    "class_areas_by_zone", "classify_rules", "features", "fit_kmeans", "fit_random_forest",
    "predict", "rasterize_training", "sample_pixels", "training_codes", "tree_cover",
]
