"""Rendering: colour ramps, true colour and legends as pure numpy (RGBA uint8 arrays).

The map provider, the processes' PNG outputs and the WMS all draw with these functions, so a
value has the same colour everywhere.  No file or HTTP here: encoding to PNG is elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Ramp:
    """A piecewise-linear colour ramp: (value, (r, g, b)) stops, ascending."""

    name: str
    stops: tuple[tuple[float, tuple[int, int, int]], ...]

    @property
    def range(self) -> tuple[float, float]:
        return self.stops[0][0], self.stops[-1][0]


RAMPS: Mapping[str, Ramp] = MappingProxyType({
    # a conventional NDVI ramp: water/bare brown → sparse yellow → dense vegetation dark green
    "ndvi": Ramp("ndvi", (
        (-0.2, (0, 0, 160)), (0.0, (165, 115, 70)), (0.2, (215, 190, 120)),
        (0.4, (190, 215, 90)), (0.6, (90, 175, 60)), (0.8, (25, 120, 40)),
        (1.0, (0, 70, 20)))),
    # water indices: dry → wet
    "water": Ramp("water", (
        (-0.6, (150, 110, 60)), (-0.2, (230, 220, 170)), (0.0, (200, 230, 240)),
        (0.3, (70, 150, 220)), (0.6, (10, 50, 150)))),
    # perceptually uniform and readable by colour-blind people (matplotlib's viridis, 0–1):
    # the default for products whose meaning has no conventional ramp
    "viridis": Ramp("viridis", (
        (0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)), (1.0, (253, 231, 37)))),
    # a diverging ramp for differences (loss red, gain green)
    "difference": Ramp("difference", (
        (-0.6, (160, 0, 0)), (-0.2, (240, 120, 90)), (0.0, (245, 245, 245)),
        (0.2, (120, 200, 110)), (0.6, (0, 100, 30)))),
})


def rescaled(ramp: Ramp | str, low: float, high: float) -> Ramp:
    """``ramp`` with its stops spread over ``[low, high]`` (a product's declared range)."""
    ramp = RAMPS[ramp] if isinstance(ramp, str) else ramp
    start, end = ramp.range
    span = (end - start) or 1.0
    return Ramp(ramp.name, tuple((low + (value - start) / span * (high - low), colour)
                                 for value, colour in ramp.stops))


def colorize(values: np.ndarray, ramp: Ramp | str = "ndvi") -> np.ndarray:
    """RGBA (h, w, 4) uint8: the ramp's colours, transparent where the value is NaN."""
    ramp = RAMPS[ramp] if isinstance(ramp, str) else ramp
    values = np.asarray(values, dtype="float64")
    stops = np.array([s[0] for s in ramp.stops])
    colours = np.array([s[1] for s in ramp.stops], dtype="float64")
    clipped = np.clip(np.nan_to_num(values, nan=stops[0]), stops[0], stops[-1])
    rgba = np.zeros(values.shape + (4,), dtype="uint8")
    for channel in range(3):
        rgba[..., channel] = np.round(np.interp(clipped, stops, colours[:, channel]))
    rgba[..., 3] = np.where(np.isnan(values), 0, 255)
    return rgba


def true_color(red: np.ndarray, green: np.ndarray, blue: np.ndarray, *,
               max_reflectance: float = 0.25, gamma: float = 1 / 1.6) -> np.ndarray:
    """RGBA (h, w, 4) uint8 from reflectances: linear stretch to ``max_reflectance`` and a
    gamma that brightens the dark vegetation; transparent where any band is NaN."""
    bands = np.stack([red, green, blue], axis=-1).astype("float64")
    scaled = np.clip(np.nan_to_num(bands, nan=0.0) / max_reflectance, 0, 1) ** gamma
    rgba = np.zeros(bands.shape[:-1] + (4,), dtype="uint8")
    rgba[..., :3] = np.round(scaled * 255)
    rgba[..., 3] = np.where(np.isnan(bands).any(axis=-1), 0, 255)
    return rgba


def legend(ramp: Ramp | str = "ndvi", *, width: int = 256, height: int = 24) -> np.ndarray:
    """A horizontal colour bar (RGBA) spanning the ramp's range, left = minimum."""
    ramp = RAMPS[ramp] if isinstance(ramp, str) else ramp
    low, high = ramp.range
    row = np.linspace(low, high, width)
    return colorize(np.tile(row, (height, 1)), ramp)


def classes_rgba(classes: np.ndarray, colours: Mapping[int, Sequence[int]]) -> np.ndarray:
    """RGBA for a class raster from a code → (r, g, b) table; unknown codes transparent."""
    rgba = np.zeros(classes.shape + (4,), dtype="uint8")
    for code, colour in colours.items():
        where = classes == code
        rgba[where, :3] = colour[:3]
        rgba[where, 3] = 255
    return rgba
