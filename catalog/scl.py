"""Sentinel-2 Scene Classification (SCL) classes and the masks built from them.

Which classes hide the ground is configurable: the default masks no data, saturated pixels,
cloud shadows, medium and high probability clouds, thin cirrus and snow.  "Cloud" for cloud
fractions counts shadows, clouds and cirrus (what hides the ground because of the weather).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable

import numpy as np
import xarray as xr


class SCL(IntEnum):
    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW = 11


#: Classes that count as "cloud" in a cloud fraction (weather hides the ground).
CLOUD_CLASSES: tuple[int, ...] = (
    SCL.CLOUD_SHADOW, SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY, SCL.THIN_CIRRUS,
)

#: Classes masked before any computation by default.
DEFAULT_MASK_CLASSES: tuple[int, ...] = (
    SCL.NO_DATA, SCL.SATURATED_OR_DEFECTIVE, *CLOUD_CLASSES, SCL.SNOW,
)

_NAMES = {c.name.lower().replace("_", "-"): int(c) for c in SCL}


def parse_classes(values: Iterable[int | str]) -> tuple[int, ...]:
    """SCL codes from ints or names such as ``cloud-shadow`` (ValueError on unknown ones)."""
    codes = []
    for value in values:
        if isinstance(value, str) and not value.isdigit():
            key = value.strip().lower().replace("_", "-")
            if key not in _NAMES:
                raise ValueError(f"unknown SCL class {value!r}; known: {', '.join(_NAMES)}")
            codes.append(_NAMES[key])
        else:
            code = int(value)
            if code not in _NAMES.values():
                raise ValueError(f"SCL classes are 0–11, got {code}")
            codes.append(code)
    return tuple(sorted(set(codes)))


def valid_mask(scl: xr.DataArray, classes: Iterable[int] = DEFAULT_MASK_CLASSES) -> xr.DataArray:
    """True where the pixel is usable (its SCL class is not in ``classes``); lazy."""
    return ~scl.isin(list(classes))


def cloud_mask(scl: xr.DataArray, classes: Iterable[int] = CLOUD_CLASSES) -> xr.DataArray:
    """True where the weather hides the ground; lazy."""
    return scl.isin(list(classes))


def class_fraction(scl: np.ndarray, inside: np.ndarray, classes: Iterable[int]) -> float | None:
    """Share of observed pixels inside the area whose class is in ``classes``.

    ``None`` when no pixel of the area has data (outside the swath).
    """
    observed = inside & (scl != SCL.NO_DATA)
    total = int(observed.sum())
    if total == 0:
        return None
    hit = int((observed & np.isin(scl, list(classes))).sum())
    return hit / total
