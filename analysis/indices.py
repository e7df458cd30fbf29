"""The registry of spectral indices: one place that the processes, the coverage fields, the
map styles and the documentation all read from.

Each index is data (bands, formula, valid range) plus a small function over reflectance arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import xarray as xr

from sentinelle.errors import InvalidInput


@dataclass(frozen=True)
class SpectralIndex:
    name: str
    title: Mapping[str, str]  # {"fr": ..., "en": ...}
    formula: str
    bands: tuple[str, ...]
    valid_range: tuple[float, float]
    compute: Callable[..., xr.DataArray]


def _normalized_difference(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    return (a - b) / (a + b)


INDICES: Mapping[str, SpectralIndex] = MappingProxyType({
    "NDVI": SpectralIndex(
        "NDVI", {"fr": "Indice de végétation par différence normalisée",
                 "en": "Normalized Difference Vegetation Index"},
        "(nir - red) / (nir + red)", ("nir", "red"), (-1.0, 1.0),
        lambda nir, red: _normalized_difference(nir, red)),
    "NDWI": SpectralIndex(
        "NDWI", {"fr": "Indice d'eau par différence normalisée (McFeeters)",
                 "en": "Normalized Difference Water Index (McFeeters)"},
        "(green - nir) / (green + nir)", ("green", "nir"), (-1.0, 1.0),
        lambda green, nir: _normalized_difference(green, nir)),
    "NDMI": SpectralIndex(
        "NDMI", {"fr": "Indice d'humidité par différence normalisée",
                 "en": "Normalized Difference Moisture Index"},
        "(nir - swir16) / (nir + swir16)", ("nir", "swir16"), (-1.0, 1.0),
        lambda nir, swir16: _normalized_difference(nir, swir16)),
    "NBR": SpectralIndex(
        "NBR", {"fr": "Indice de brûlis normalisé", "en": "Normalized Burn Ratio"},
        "(nir - swir22) / (nir + swir22)", ("nir", "swir22"), (-1.0, 1.0),
        lambda nir, swir22: _normalized_difference(nir, swir22)),
    "EVI": SpectralIndex(
        "EVI", {"fr": "Indice de végétation amélioré", "en": "Enhanced Vegetation Index"},
        "2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)", ("nir", "red", "blue"),
        (-1.0, 1.0),
        lambda nir, red, blue: 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)),
    "SAVI": SpectralIndex(
        "SAVI", {"fr": "Indice de végétation ajusté au sol",
                 "en": "Soil Adjusted Vegetation Index"},
        "1.5 * (nir - red) / (nir + red + 0.5)", ("nir", "red"), (-1.0, 1.0),
        lambda nir, red: 1.5 * (nir - red) / (nir + red + 0.5)),
})


def get_index(name: str) -> SpectralIndex:
    key = str(name).upper()
    if key not in INDICES:
        raise InvalidInput(f"unknown index {name!r}; available: {', '.join(INDICES)}")
    return INDICES[key]


def compute_index(cube: xr.Dataset, name: str) -> xr.DataArray:
    """The index over a reflectance cube (lazy, float32, named after the index)."""
    index = get_index(name)
    missing = [b for b in index.bands if b not in cube]
    if missing:
        raise InvalidInput(f"{index.name} needs band(s) {', '.join(missing)}")
    result = index.compute(*(cube[b] for b in index.bands)).astype("float32")
    return result.rename(index.name)
