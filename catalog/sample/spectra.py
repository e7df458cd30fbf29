"""Surface reflectance model: NDVI per cover and date, then bands consistent with that NDVI.

Seasonal NDVI curves are piecewise linear through (day of year, NDVI) knots, wrapping over the
year: winter wheat peaks in April–May and is harvested in July, maize peaks in August,
rapeseed dips while flowering in April, deciduous forest goes from 0.55 in winter to 0.88 in
summer, Guiana's evergreen forest stays near 0.88.  NIR grows with the NDVI and red
follows from the NDVI definition, so the noiseless NDVI of a pixel is exactly the model value
(and small NDVI variations move NIR and red by a few DNs only, which keeps the COGs small);
blue, green and SWIR are linear in red and NIR with plausible magnitudes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

_CURVES = {
    "water": ((1, -0.3),),
    "built_up": ((1, 0.1),),
    "bare_soil": ((1, 0.12),),
    "savanna": ((1, 0.42), (60, 0.48), (150, 0.5), (240, 0.4), (300, 0.32), (340, 0.38)),
    "deciduous_forest": ((15, 0.55), (75, 0.6), (120, 0.8), (165, 0.88), (235, 0.88),
                         (290, 0.78), (330, 0.6)),
    "evergreen_forest": ((30, 0.87), (130, 0.89), (260, 0.86), (320, 0.87)),
    "permanent_grassland": ((15, 0.66), (90, 0.74), (135, 0.82), (200, 0.7), (235, 0.6),
                            (290, 0.74), (340, 0.68)),
    "temporary_grassland": ((15, 0.6), (100, 0.75), (140, 0.82), (150, 0.45), (185, 0.75),
                            (215, 0.5), (270, 0.72), (340, 0.62)),
    "winter_wheat": ((15, 0.35), (60, 0.5), (110, 0.84), (140, 0.86), (170, 0.6), (195, 0.3),
                     (205, 0.16), (280, 0.16), (300, 0.22), (340, 0.3)),
    "winter_barley": ((15, 0.38), (60, 0.55), (100, 0.82), (130, 0.8), (160, 0.45),
                      (185, 0.18), (280, 0.16), (300, 0.24), (340, 0.33)),
    "maize": ((15, 0.2), (110, 0.15), (140, 0.2), (170, 0.45), (200, 0.78), (230, 0.87),
              (255, 0.75), (280, 0.3), (295, 0.18), (340, 0.22)),
    "rapeseed": ((15, 0.62), (75, 0.8), (110, 0.62), (140, 0.8), (170, 0.55), (190, 0.2),
                 (240, 0.16), (255, 0.35), (290, 0.65), (340, 0.66)),
    "pasture": ((30, 0.72), (150, 0.76), (240, 0.64), (300, 0.58), (340, 0.68)),
    "cassava": ((30, 0.45), (120, 0.65), (200, 0.72), (280, 0.6), (330, 0.5)),
    "vegetables": ((20, 0.3), (60, 0.6), (100, 0.35), (160, 0.55), (220, 0.3), (280, 0.58),
                   (330, 0.35)),
}

#: Spectral families: NIR = a + b × NDVI^c and swir16 = d − e × NDVI (NDVI below 0 counts
#: as 0 in both), as (a, b, c, d, e).
_FAMILIES = {
    "water": (0.022, 0.0, 1, 0.012, 0.0),
    "built": (0.155, 0.0, 1, 0.21, 0.0),
    "soil": (0.16, 0.2, 1, 0.29, 0.0),
    "vegetation": (0.17, 0.22, 2, 0.3, 0.17),
}
FAMILY: Mapping[str, str] = MappingProxyType(
    {name: {"water": "water", "built_up": "built", "bare_soil": "soil"}.get(name, "vegetation")
     for name in _CURVES}
)
#: Amplitude of the smooth within-parcel NDVI variation, by family.
TEXTURE = MappingProxyType({"water": 0.005, "built": 0.005, "soil": 0.005, "vegetation": 0.01})


def ndvi(cover: str, date: dt.date, shift_days: np.ndarray | float = 0.0) -> np.ndarray:
    """The model NDVI of ``cover`` on ``date``, its season shifted by ``shift_days``."""
    knots = np.array(_CURVES[cover], dtype=float)
    day = date.timetuple().tm_yday - np.asarray(shift_days, dtype=float)
    return np.interp(day, knots[:, 0], knots[:, 1], period=365)


def reflectance(ndvi_values: np.ndarray, family_index: np.ndarray) -> dict[str, np.ndarray]:
    """Surface reflectance of the five bands from per-pixel NDVI and family index.

    ``family_index`` indexes :data:`FAMILY_ORDER`; brightness variations are applied by the
    caller as a common factor, which leaves NDVI unchanged.
    """
    params = np.array([_FAMILIES[f] for f in FAMILY_ORDER])[family_index]
    green_part = np.clip(ndvi_values, 0, 1)
    nir = params[..., 0] + params[..., 1] * green_part ** params[..., 2]
    red = nir * (1 - ndvi_values) / (1 + ndvi_values)
    return {
        "blue": 0.5 * red + 0.015,
        "green": 0.3 * red + 0.12 * nir + 0.03,
        "red": red,
        "nir": nir,
        "swir16": params[..., 3] - params[..., 4] * green_part,
    }


FAMILY_ORDER: tuple[str, ...] = tuple(_FAMILIES)
