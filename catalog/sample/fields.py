"""Seeded random streams and smooth random fields that can be evaluated window by window.

Every random draw goes through :func:`rng`, keyed by the user seed plus names, so adding a new
draw somewhere never shifts the others and two runs with one seed give identical bytes.
:func:`wave_field` is a sum of plane waves: smooth, cheap, and the same value for a pixel
whichever window it is computed in, which the full-size scene needs.
"""

from __future__ import annotations

import zlib

import numpy as np


def rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator for one purpose: ``rng(seed, "clouds", "bretagne", 3)``."""
    words = [seed] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(words)


def wave_field(rows: np.ndarray, cols: np.ndarray, generator: np.random.Generator,
               wavelengths: tuple[float, float], waves: int = 8) -> np.ndarray:
    """A smooth zero-mean, unit-variance field on the grid ``rows × cols`` (pixel indices).

    Wavelengths are in pixels.  Each wave is separable in rows and columns, so the cost is a
    few outer products per wave instead of a cosine per pixel.
    """
    angles = generator.uniform(0, np.pi, waves)
    lengths = np.exp(generator.uniform(np.log(wavelengths[0]), np.log(wavelengths[1]), waves))
    phases = generator.uniform(0, 2 * np.pi, waves)
    out = np.zeros((rows.size, cols.size))
    for angle, length, phase in zip(angles, lengths, phases):
        k = 2 * np.pi / length
        along_rows = k * np.sin(angle) * rows.astype(float) + phase
        along_cols = k * np.cos(angle) * cols.astype(float)
        out += np.outer(np.cos(along_rows), np.cos(along_cols))
        out -= np.outer(np.sin(along_rows), np.sin(along_cols))
    return out * np.sqrt(2.0 / waves)
