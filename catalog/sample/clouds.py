"""Clouds, cirrus and cloud shadows, and the Scene Classification (SCL) layer.

Clouds are decided on the 20 m SCL grid and the 10 m bands follow that mask exactly (each 20 m
cloud pixel covers its four 10 m pixels), so masking with SCL removes every cloud-affected
pixel.  Thick clouds are thresholded smooth blobs (high probability in their core, medium at
their rim), cirrus a wider and thinner field, shadows the cloud mask moved away from the sun by
the cloud height over the tangent of the sun elevation.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from .classes import BARE_SOIL, BUILT_UP, CROP, SPARSE, WATER

SHADOW, VEGETATION, NOT_VEGETATED, SCL_WATER, CLOUD_MEDIUM, CLOUD_HIGH, CIRRUS = (
    3, 4, 5, 6, 8, 9, 10)
CLOUDY = (SHADOW, CLOUD_MEDIUM, CLOUD_HIGH, CIRRUS)  # what hides the ground
CLOUD_HEIGHT_M = 1200.0


def sun_position(lon: float, lat: float, when: dt.datetime) -> tuple[float, float]:
    """Approximate sun (azimuth from north clockwise, elevation) in degrees (±0.5°)."""
    day = when.timetuple().tm_yday
    gamma = 2 * math.pi / 365 * (day - 1 + (when.hour - 12) / 24)
    declination = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
                   - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma))
    equation_of_time = 229.18 * (0.000075 + 0.001868 * math.cos(gamma)
                                 - 0.032077 * math.sin(gamma) - 0.014615 * math.cos(2 * gamma)
                                 - 0.040849 * math.sin(2 * gamma))
    minutes = when.hour * 60 + when.minute + when.second / 60 + equation_of_time + 4 * lon
    hour_angle = math.radians(minutes / 4 - 180)
    phi = math.radians(lat)
    elevation = math.asin(math.sin(phi) * math.sin(declination)
                          + math.cos(phi) * math.cos(declination) * math.cos(hour_angle))
    azimuth = math.atan2(math.sin(hour_angle),
                         math.cos(hour_angle) * math.sin(phi)
                         - math.tan(declination) * math.cos(phi))
    return (math.degrees(azimuth) + 180) % 360, math.degrees(elevation)


def cloud_layers(shape: tuple[int, int], cloud: float, cirrus: float, sun: tuple[float, float],
                 generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """20 m cloud classes (0 where clear, else an SCL cloud code) and cloud density 0–1."""
    classes = np.zeros(shape, np.uint8)
    density = np.zeros(shape)
    blobs = _smooth(generator, shape, 14) + 0.2 * _smooth(generator, shape, 4)
    veil = _smooth(generator, shape, 35)
    if cloud > 0:
        edge, core = np.quantile(blobs, [1 - cloud, 1 - 0.65 * cloud])
        classes[blobs > edge] = CLOUD_MEDIUM
        classes[blobs > core] = CLOUD_HIGH
        density = np.clip((blobs - edge) / (blobs.max() - edge), 0, 1)
    if cirrus > 0:
        clear = classes == 0
        threshold = np.quantile(veil[clear], 1 - min(cirrus / clear.mean(), 1))
        classes[clear & (veil > threshold)] = CIRRUS
    azimuth, elevation = sun
    length = CLOUD_HEIGHT_M / math.tan(math.radians(elevation)) / 20  # in 20 m pixels
    drow = round(math.cos(math.radians(azimuth)) * length)
    dcol = round(-math.sin(math.radians(azimuth)) * length)
    thick = _shifted(np.isin(classes, (CLOUD_MEDIUM, CLOUD_HIGH)), drow, dcol)
    classes[thick & (classes == 0)] = SHADOW
    return classes, density


def surface_scl(land_class: np.ndarray, ndvi_values: np.ndarray) -> np.ndarray:
    """10 m SCL of clear ground: water, vegetation, or not vegetated (green enough crops and
    sparse vegetation count as vegetation)."""
    out = np.full(land_class.shape, VEGETATION, np.uint8)
    out[np.isin(land_class, (BUILT_UP, BARE_SOIL))] = NOT_VEGETATED
    out[np.isin(land_class, (CROP, SPARSE)) & (ndvi_values <= 0.3)] = NOT_VEGETATED
    out[land_class == WATER] = SCL_WATER
    return out


def majority_2x2(values: np.ndarray, candidates=(VEGETATION, NOT_VEGETATED, SCL_WATER)):
    """The most frequent candidate of each 2×2 block (ties go to the first candidate)."""
    h, w = values.shape
    blocks = values.reshape(h // 2, 2, w // 2, 2)
    counts = np.stack([(blocks == c).sum(axis=(1, 3)) for c in candidates])
    return np.asarray(candidates, np.uint8)[counts.argmax(axis=0)]


def apply(bands: dict[str, np.ndarray], classes: np.ndarray, density: np.ndarray) -> None:
    """Brighten, veil or darken reflectances in place where ``classes`` says so.

    ``classes`` and ``density`` must be on the grid of the bands (repeat the 20 m ones for the
    10 m bands).  Thick cloud is bright and spectrally flat (NDVI ≈ 0), cirrus a thin veil,
    shadow a dimming.
    """
    white = 0.42 + 0.1 * density
    for name, value in bands.items():
        flat = white * (0.8 if name == "swir16" else 1.0) + (0.02 if name == "blue" else 0.0)
        high = classes == CLOUD_HIGH
        value[high] = flat[high]
        medium = classes == CLOUD_MEDIUM
        value[medium] = 0.4 * value[medium] + 0.6 * flat[medium]
        veil = classes == CIRRUS
        value[veil] = 0.85 * value[veil] + (0.08 if name == "blue" else 0.05)
        dark = classes == SHADOW
        value[dark] *= 0.35


def _smooth(generator: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit variance: blobs of about ``sigma`` px.

    Filtered at a quarter of the resolution and interpolated back, which is 16 times cheaper
    and looks the same for blobs this smooth.
    """
    coarse = (-(-shape[0] // 4), -(-shape[1] // 4))
    field = gaussian_filter(generator.standard_normal(coarse), sigma / 4, mode="wrap")
    field = zoom(field, 4, order=1)[:shape[0], :shape[1]]
    return field / field.std()


def _shifted(mask: np.ndarray, drow: int, dcol: int) -> np.ndarray:
    """``mask`` moved by (drow, dcol) pixels, False where nothing moved in."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(0, -drow):h - max(0, drow), max(0, -dcol):w - max(0, dcol)]
    out[max(0, drow):max(0, drow) + src.shape[0], max(0, dcol):max(0, dcol) + src.shape[1]] = src
    return out
