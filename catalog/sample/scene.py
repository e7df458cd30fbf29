"""What the satellite sees on one date: surface reflectance of a landscape, clouds, SCL, DNs.

:func:`surface` works on any window of a parcel raster (the full-size scene renders window by
window); :func:`render` does a whole sample area and also returns the truth the tests and
``truth/`` CSVs need: per-parcel mean NDVI of the noiseless model and which parcels are clear.

Encoding (processing baseline ≥ 04.00): DN = round((reflectance + 0.1) × 10000), 0 = no data.
A white noise of 0.2 DN keeps the images from being perfectly smooth without hurting
compression or the per-parcel means.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from . import clouds, spectra
from .areas import Acquisition, Area
from .fields import rng, wave_field
from .landscape import Landscape

NOISE_DN = 0.2


@dataclass(frozen=True)
class ParcelModel:
    """Per-parcel model parameters: a small NDVI offset and a season shift for vegetation."""

    offsets: np.ndarray
    shifts: np.ndarray

    @classmethod
    def draw(cls, count: int, generator: np.random.Generator) -> ParcelModel:
        offsets = np.clip(generator.normal(0, 0.015, count), -0.03, 0.03)
        return cls(offsets, generator.uniform(-8, 8, count))

    def ndvi(self, covers: np.ndarray, date: dt.date) -> tuple[np.ndarray, np.ndarray]:
        """Parcel NDVI and spectral-family index on ``date`` for the given covers."""
        families = np.array([spectra.FAMILY_ORDER.index(spectra.FAMILY[c]) for c in covers])
        values = np.zeros(covers.size)
        for cover in np.unique(covers):
            mine = covers == cover
            values[mine] = spectra.ndvi(cover, date, self.shifts[mine])
        vegetation = families == spectra.FAMILY_ORDER.index("vegetation")
        return values + np.where(vegetation, self.offsets, 0.0), families


@dataclass(frozen=True)
class Rendering:
    bands: dict[str, np.ndarray]  # uint16 DNs: blue/green/red/nir at 10 m, swir16 at 20 m
    scl: np.ndarray  # uint8, 20 m
    parcel_ndvi: np.ndarray  # mean noiseless NDVI of each parcel
    parcel_clear: np.ndarray  # bool: no pixel of the parcel under an SCL cloud class
    cloudy_10m: np.ndarray  # bool, the 20 m cloud classes repeated on the 10 m grid


def surface(parcels: np.ndarray, rows: np.ndarray, cols: np.ndarray, parcel_ndvi: np.ndarray,
            parcel_family: np.ndarray, seed: int, name: str
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Clear-sky 10 m reflectances (swir16 included, averaged to 20 m later) and NDVI of the
    window ``rows × cols`` (global pixel indices) whose parcel indices are ``parcels``."""
    texture = wave_field(rows, cols, rng(seed, "ndvi-texture", name), (100, 600))
    brightness = 1 + 0.005 * wave_field(rows, cols, rng(seed, "brightness", name), (80, 400))
    families = parcel_family[parcels]
    amplitude = np.array([spectra.TEXTURE[f] for f in spectra.FAMILY_ORDER])[families]
    ndvi = np.clip(parcel_ndvi[parcels] + amplitude * texture, -0.95, 0.95)
    bands = spectra.reflectance(ndvi, families)
    return {band: value * brightness for band, value in bands.items()}, ndvi


def encode(reflectance: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """uint16 DNs with the −0.1 offset and 1 DN of noise; never 0 (no data)."""
    dn = (reflectance + 0.1) * 10000 + generator.normal(0, NOISE_DN, reflectance.shape)
    return np.clip(np.rint(dn), 1, 65535).astype(np.uint16)


def block_mean(values: np.ndarray) -> np.ndarray:
    """Mean of each 2×2 block: 10 m → 20 m."""
    h, w = values.shape
    return values.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def render(landscape: Landscape, model: ParcelModel, acquisition: Acquisition, index: int,
           sun: tuple[float, float], seed: int) -> Rendering:
    """Bands, SCL and per-parcel truth of one sample area on one date."""
    area: Area = landscape.area
    date = acquisition.date
    parcel_ndvi, families = model.ndvi(landscape.covers_on(date), date)
    grid = np.arange(area.size)
    reflectance, ndvi = surface(landscape.parcel_raster, grid, grid, parcel_ndvi, families,
                                seed, area.name)

    land_class = landscape.class_raster(date)
    scl = clouds.majority_2x2(clouds.surface_scl(land_class, ndvi))
    cloud_classes, density = clouds.cloud_layers(
        scl.shape, acquisition.cloud, acquisition.cirrus, sun,
        rng(seed, "clouds", area.name, index))
    scl[cloud_classes > 0] = cloud_classes[cloud_classes > 0]

    swir = block_mean(reflectance.pop("swir16"))
    clouds.apply({"swir16": swir}, cloud_classes, density)
    clouds.apply(reflectance, _repeat(cloud_classes), _repeat(density))
    noise = rng(seed, "noise", area.name, index)
    bands = {band: encode(value, noise) for band, value in reflectance.items()}
    bands["swir16"] = encode(swir, noise)

    labels = landscape.parcel_raster.ravel()
    pixels = landscape.parcels.pixels
    cloudy = _repeat(cloud_classes > 0)
    return Rendering(
        bands=bands,
        scl=scl,
        parcel_ndvi=np.bincount(labels, ndvi.ravel(), pixels.size) / pixels,
        parcel_clear=np.bincount(labels, cloudy.ravel(), pixels.size) == 0,
        cloudy_10m=cloudy,
    )


def _repeat(values: np.ndarray) -> np.ndarray:
    return values.repeat(2, axis=0).repeat(2, axis=1)
