"""Encoders: arrays to the bytes users download (Cloud Optimized GeoTIFF, PNG), and the one
way results are stored on disk.

COGs are written with rio-cogeo from an in-memory GeoTIFF (GDAL's ``/vsimem/``: no temporary
file, so a full disk never breaks a synchronous map or coverage), carry CRS, transform,
nodata, band descriptions and scale/offset, and pass ``rio cogeo validate``.

:func:`write_result` stores a job's result: written beside its final name and renamed, so a
reader never sees half a file; a full disk (``ENOSPC``) or quota (``EDQUOT``) removes what
was written and raises :class:`~sentinelle.errors.StorageFull` (507).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from sentinelle.errors import StorageFull

#: errors that mean "no room left" on the results disk
FULL = (errno.ENOSPC, errno.EDQUOT)


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


def storage_full(folder: str | Path, needed: int | None = None) -> StorageFull:
    """The error for a results folder without room (``needed`` bytes, when known)."""
    try:
        free = f"{shutil.disk_usage(folder).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    wanted = f"{needed:,} bytes needed, " if needed is not None else ""
    return StorageFull(f"results disk full ({wanted}{free}): the result could not be "
                       "stored; nothing was kept — try again once the operator has freed "
                       "space in the results folder")


def check_room(folder: str | Path, needed: int, *, margin: int = 8 * 1024) -> None:
    """Raise :class:`StorageFull` before writing ``needed`` bytes into ``folder`` when the
    disk cannot hold them (plus ``margin``)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the write itself will say
    if free < needed + margin:
        raise storage_full(folder, needed)


def write_result(path: str | Path, payload: bytes | str) -> Path:
    """Store ``payload`` at ``path`` atomically (temporary name, then rename); on a full disk
    nothing is left behind and :class:`StorageFull` is raised.  Other ``OSError`` s propagate
    after the same clean-up."""
    path = Path(path)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    part = path.with_name(f".{path.name}.part")
    try:
        with open(part, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(part, path)
    except OSError as err:
        part.unlink(missing_ok=True)
        if err.errno in FULL:
            raise storage_full(path.parent, len(data)) from err
        raise
    return path
