"""Encoders: arrays to the bytes users download (Cloud Optimized GeoTIFF, PNG).

COGs are written with rio-cogeo from an in-memory GeoTIFF, carry CRS, transform, nodata,
band descriptions and scale/offset, and pass ``rio cogeo validate``.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles


def to_cog(data: np.ndarray, *, transform: Affine, crs, nodata: float | None = np.nan,
           descriptions: Sequence[str] | None = None, scales: Sequence[float] | None = None,
           offsets: Sequence[float] | None = None, colormap: dict | None = None,
           tags: dict | None = None, blocksize: int = 512) -> bytes:
    """A COG (DEFLATE, internal tiles, overviews) from a (bands, h, w) or (h, w) array."""
    array = data[np.newaxis] if data.ndim == 2 else data
    count, height, width = array.shape
    profile = dict(driver="GTiff", width=width, height=height, count=count,
                   dtype=array.dtype.name, crs=crs, transform=transform, nodata=nodata)
    cog = dict(cog_profiles.get("deflate"), blockxsize=blocksize, blockysize=blocksize,
               predictor=3 if array.dtype.kind == "f" else 2)
    with MemoryFile() as source, MemoryFile() as target:
        with source.open(**profile) as dst:
            dst.write(array)
            for index in range(count):
                if descriptions:
                    dst.set_band_description(index + 1, descriptions[index])
            if scales:
                dst.scales = tuple(scales)
            if offsets:
                dst.offsets = tuple(offsets)
            if colormap:
                dst.write_colormap(1, colormap)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
        with source.open() as src:
            cog_translate(src, target.name, cog, in_memory=True, quiet=True,
                          overview_resampling="nearest" if colormap else "average",
                          use_cog_driver=False)
        return target.read()


def to_png(rgba: np.ndarray) -> bytes:
    """PNG bytes from an (h, w, 4) uint8 RGBA array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA").save(buffer, format="PNG",
                                                                   optimize=False)
    return buffer.getvalue()
