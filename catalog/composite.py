"""Masking and temporal composites, lazily, on cubes from ``load_cube``.

``mask_clouds`` blanks every value the source's cloud mask (SCL classes, a Theia bit field, a
cloud probability: :mod:`~sentinelle.catalog.masks`) says hides the ground; ``composite``
reduces the time axis: ``median`` (robust to leftover haze), ``max`` (greenest pixel for an
index) or ``latest`` (most recent valid observation, for "the state today").
"""

from __future__ import annotations

from typing import Iterable

import dask.array as dsa
import numpy as np
import xarray as xr

from sentinelle.catalog.masks import Mask, SclMask
from sentinelle.errors import InvalidInput

METHODS = ("median", "max", "latest")


def mask_clouds(cube: xr.Dataset, mask: Mask | Iterable[int] | None = None) -> xr.Dataset:
    """Values set to NaN where ``mask`` (default: SCL's default classes; an iterable of SCL
    classes is accepted) hides the ground; the mask's band is dropped.  A mask without a
    band (no cloud mask) leaves the cube as it is."""
    if mask is None:
        mask = SclMask()
    elif not isinstance(mask, Mask):
        mask = SclMask(classes=tuple(int(c) for c in mask))
    if not mask.masks:
        return cube
    if mask.band not in cube:
        raise InvalidInput(f"masking needs the {mask.band} band in the cube")
    hidden = mask.hidden(cube[mask.band])
    return cube.drop_vars(mask.band).where(~hidden)


def _latest_valid(block: np.ndarray, axis: int) -> np.ndarray:
    """Along ``axis`` (time, ascending), the last non-NaN value; NaN where none."""
    moved = np.moveaxis(block, axis, 0)
    valid = ~np.isnan(moved)
    last = moved.shape[0] - 1 - np.argmax(valid[::-1], axis=0)
    out = np.take_along_axis(moved, last[np.newaxis], axis=0)[0]
    out[~valid.any(axis=0)] = np.nan
    return out


def _latest(da: xr.DataArray) -> xr.DataArray:
    data = da.data
    axis = da.get_axis_num("time")
    if isinstance(data, dsa.Array):
        data = data.rechunk({axis: -1})
        reduced = dsa.map_blocks(_latest_valid, data, axis, drop_axis=axis, dtype=data.dtype)
    else:
        reduced = _latest_valid(data, axis)
    dims = [d for d in da.dims if d != "time"]
    coords = {k: v for k, v in da.coords.items() if "time" not in v.dims}
    return xr.DataArray(reduced, dims=dims, coords=coords, attrs=da.attrs)


def composite(cube: xr.Dataset, method: str = "median") -> xr.Dataset:
    """Reduce the time axis of a (masked) cube; NaN where no date was valid."""
    if method not in METHODS:
        raise InvalidInput(f"composite must be one of {', '.join(METHODS)}, got {method!r}")
    cube = cube.chunk({"time": -1}) if cube.chunks else cube
    if method == "median":
        out = cube.median("time", skipna=True)
    elif method == "max":
        out = cube.max("time", skipna=True)
    else:
        out = cube.map(_latest)
    out = out.drop_vars([c for c in ("id",) if c in out.coords])
    out.attrs = dict(cube.attrs, composite=method, dates=[str(t)[:10] for t in cube.time.values])
    return out.rio.write_crs(cube.rio.crs) if cube.rio.crs else out
