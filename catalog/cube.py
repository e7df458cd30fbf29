"""Lazy Sentinel-2 cubes: scenes + bands + grid → an ``xarray.Dataset`` backed by Dask.

stackstac builds the task graph (one task per COG block the grid touches; nothing is read
until computed).  Digital numbers stay integers until the last step (unsigned files whose
nodata is 0, the usual Sentinel-2 COG), where each scene's own scale and offset turn them into
float32 values with NaN for nodata; other data types (Theia's int16 with −10000, a float
product) are read as float32 with NaN where the file or the source declares nodata.  Mask
bands (SCL, Theia CLM, a cloud probability) stay integers (uint8) and are always resampled
with nearest neighbour.  The pixel budget is checked before anything is read.

Unreadable files: every file's header is opened first
(:func:`~sentinelle.catalog.gdal.check_assets`, cached).  A scene with a missing or corrupt
file fails the request with a 502 naming the file — or, with ``skip_unreadable``
(composites, time series, cloud search), is left out like a fully cloudy date and listed in
``attrs["skipped"]``, as long as another scene remains.  A slow or unreachable host is never
skipped (504 / 503): that is a fault of the moment, not of the scene.  Damage found only
while reading blocks (a truncated file whose header is intact) fails the request with a 502
naming the file: leaving out part of a scene would pass its missing blocks off as clouds.
"""

from __future__ import annotations

import logging
from typing import Sequence

import dask.array as dsa
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import shapely
import stackstac
import xarray as xr

from sentinelle.catalog.area import Area, Grid
from sentinelle.catalog.gdal import (
    CheckedReader,
    asset_header,
    check_assets,
    reader_env,
    register_asset,
)
from sentinelle.catalog.overviews import ground_resolution, overview_href
from sentinelle.catalog.presets import CLASS_BANDS
from sentinelle.catalog.scenes import Scene
from sentinelle.errors import AssetUnreadable, InvalidInput, NoData, SourceUnavailable, TooLarge
from sentinelle.settings import Limits

LOGGER = logging.getLogger(__name__)

RESAMPLING = ("nearest", "bilinear", "cubic", "average")


def check_budget(n_scenes: int, n_bands: int, grid: Grid, limits: Limits) -> None:
    """Raise :class:`TooLarge` before reading if the request exceeds the limits."""
    if n_scenes > limits.max_dates:
        raise TooLarge(
            f"{n_scenes} scenes match but at most {limits.max_dates} can be combined in one "
            "request; narrow the datetime interval or lower max_cloud"
        )
    pixels = n_scenes * n_bands * grid.npixels
    if pixels > limits.max_pixels:
        raise TooLarge(
            f"the request needs {pixels:,} pixels ({n_scenes} dates × {n_bands} bands × "
            f"{grid.shape[1]}×{grid.shape[0]} px) but the limit is {limits.max_pixels:,}; "
            "use a smaller area, a coarser resolution, fewer bands or fewer dates"
        )


#: unsigned integer types read as such (0 = nodata); anything else is read as float32
UNSIGNED = ("uint8", "uint16")


def asset_dtype(scene: Scene, band: str) -> str:
    """The data type of a band's file: as the catalog or the source declares it, else as
    its header says (read once, cached)."""
    asset = scene.assets[band]
    return asset.dtype or asset_header(asset.href).dtype


def integer_read(scenes: Sequence[Scene], band: str) -> bool:
    """Whether ``band`` can be read as uint16 with 0 for nodata in every scene (the cheap
    path): unsigned files whose nodata is 0."""
    return all(asset_dtype(s, band) in UNSIGNED and s.assets[band].nodata == 0 for s in scenes)


def _stack(scenes: Sequence[Scene], bands: list[str], grid: Grid, *, resampling: str,
           chunk_size: int, dtype: str = "uint16") -> xr.DataArray:
    from rasterio.enums import Resampling

    remote = any(scene.assets[b].is_remote for scene in scenes for b in bands)
    items = [scene.stac_item(bands) for scene in scenes]
    for scene in scenes:
        for band in bands:
            register_asset(scene.assets[band].href, scene.id, band)
    if resampling != "nearest":  # averaging: read the overview that suits the output pixel
        for scene, item in zip(scenes, items):
            for band in bands:
                asset = scene.assets[band]
                target = ground_resolution(grid, asset.epsg or grid.epsg)
                if asset.resolution is None or target >= 2 * asset.resolution:
                    item["assets"][band]["href"] = overview_href(asset.href, target)
    return stackstac.stack(
        items,
        assets=bands,
        epsg=grid.epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        xy_coords="center",
        dtype=dtype,
        fill_value=np.uint16(0) if dtype == "uint16" else np.float32("nan"),
        rescale=False,
        chunksize=chunk_size,
        resampling=Resampling[resampling],
        gdal_env=reader_env(remote=remote),
        errors_as_nodata=(),  # never a silent hole: unreadable files were dealt with before
        reader=CheckedReader,
        sortby_date=False,
        properties=False,
        band_coords=False,
    )


def _nested_grid(scenes: Sequence[Scene], band: str, grid: Grid) -> tuple[Grid, int] | None:
    """The band's own coarser grid and the integer factor to ``grid``, when every scene has
    the band in ``grid``'s CRS on one native grid in which ``grid``'s pixels nest exactly
    (SCL at 20 m under a 10 m grid).  ``None`` otherwise (then GDAL warps)."""
    assets = [scene.assets[band] for scene in scenes]
    first = assets[0]
    if first.transform is None or first.resolution is None:
        return None
    origin = (first.transform[2], first.transform[5])
    if any(a.epsg != grid.epsg or a.transform is None or a.resolution != first.resolution
           or (a.transform[2], a.transform[5]) != origin for a in assets):
        return None
    factor = first.resolution / grid.resolution
    if factor < 2 or abs(factor - round(factor)) > 1e-9:
        return None

    def on_lattice(value: float) -> bool:
        steps = value / grid.resolution
        return abs(steps - round(steps)) < 1e-6

    if not (on_lattice(grid.transform.c - origin[0]) and on_lattice(grid.transform.f - origin[1])):
        return None
    coarse = Grid.from_area(Area(shapely.box(*grid.bounds), grid.crs), grid.crs,
                            first.resolution, anchor=origin)
    return coarse, int(round(factor))


def _upsampled(scenes: Sequence[Scene], band: str, grid: Grid, coarse: Grid, factor: int, *,
               like: xr.DataArray, chunk_size: int) -> xr.DataArray:
    """A class band read on its native ``coarse`` grid, each pixel repeated ``factor`` times
    per axis and cut to ``grid``: what nearest-neighbour warping gives, without the warp."""
    raw = _stack(scenes, [band], coarse, resampling="nearest",
                 chunk_size=max(1, chunk_size // factor)).sel(band=band, drop=True)
    data = dsa.repeat(dsa.repeat(raw.data, factor, axis=1), factor, axis=2)
    row = int(round((coarse.transform.f - grid.transform.f) / grid.resolution))
    col = int(round((grid.transform.c - coarse.transform.c) / grid.resolution))
    height, width = grid.shape
    data = data[:, row:row + height, col:col + width].rechunk(like.data.chunks)
    return xr.DataArray(data.astype("uint8"), dims=("time", "y", "x"),
                        coords={"x": like["x"], "y": like["y"]})


def readable_scenes(scenes: Sequence[Scene], bands: Sequence[str], *,
                    skip_unreadable: bool = False) -> tuple[list[Scene], dict[str, str]]:
    """The scenes whose files for ``bands`` all open, and ``{scene id: reason}`` for those
    left out (see the module docstring); raises when a scene cannot be left out."""
    errors = check_assets((scene.assets[band].href, scene.id, band)
                          for scene in scenes for band in bands)
    if not errors:
        return list(scenes), {}
    for error in errors.values():  # a slow or unreachable host: no scene is to blame
        if not isinstance(error, AssetUnreadable):
            raise error
    broken: dict[str, SourceUnavailable] = {}
    for scene in scenes:
        for band in bands:
            if (scene.id, band) in errors and scene.id not in broken:
                broken[scene.id] = errors[(scene.id, band)]
    kept = [scene for scene in scenes if scene.id not in broken]
    if not skip_unreadable or not kept:
        raise next(iter(broken.values()))
    for scene_id, error in broken.items():
        LOGGER.warning("scene %s left out: %s", scene_id, error)
    return kept, {scene_id: str(error) for scene_id, error in broken.items()}


def load_cube(scenes: Sequence[Scene], bands: Sequence[str], grid: Grid, *,
              resampling: str = "nearest", limits: Limits | None = None,
              skip_unreadable: bool = False) -> xr.Dataset:
    """A lazy cube ``(time, y, x)`` per band on ``grid``, scenes sorted by date.

    Reflectance bands are float32 (DN × scale + offset, NaN where nodata); ``scl`` is uint8
    (0 = no data).  ``time`` carries the scene ids in the ``id`` coordinate.  A scene with a
    missing or corrupt file raises :class:`AssetUnreadable` (502), or with ``skip_unreadable``
    is left out (named in ``attrs["skipped"]``) while another scene remains.
    """
    limits = limits or Limits()
    bands = list(dict.fromkeys(bands))
    if not bands:
        raise InvalidInput("at least one band is needed")
    if resampling not in RESAMPLING:
        raise InvalidInput(f"resampling must be one of {', '.join(RESAMPLING)}")
    if not scenes:
        raise NoData("no scene matches the request")
    scenes = sorted(scenes, key=lambda s: (s.datetime, s.id))
    for scene in scenes:
        missing = [b for b in bands if b not in scene.assets]
        if missing:
            raise InvalidInput(
                f"scene {scene.id} has no readable asset for band(s) {', '.join(missing)}; "
                f"available: {', '.join(scene.assets)}"
            )
    check_budget(len(scenes), len(bands), grid, limits)
    scenes, skipped = readable_scenes(scenes, bands, skip_unreadable=skip_unreadable)

    reflectance = [b for b in bands if b not in CLASS_BANDS]
    classes = [b for b in bands if b in CLASS_BANDS]
    variables: dict[str, xr.DataArray] = {}
    integer = [b for b in reflectance if integer_read(scenes, b)]
    groups = [(integer, "uint16"), ([b for b in reflectance if b not in integer], "float32")]
    for group, dtype in groups:
        if not group:
            continue
        raw = _stack(scenes, group, grid, resampling=resampling,
                     chunk_size=limits.chunk_size, dtype=dtype)
        for band in group:
            dn = raw.sel(band=band, drop=True)
            scale = xr.DataArray([s.assets[band].scale for s in scenes], dims="time")
            offset = xr.DataArray([s.assets[band].offset for s in scenes], dims="time")
            values = (dn.astype("float32") * scale.astype("float32")
                      + offset.astype("float32"))
            nodata = {s.assets[band].nodata for s in scenes} - {None}
            valid = dn == dn  # float reads: NaN where the file declares nodata
            if dtype == "uint16":
                valid = dn != 0
            for value in nodata:  # the source's nodata, declared in the file or not
                valid = valid & (dn != value)
            variables[band] = values.where(valid).astype("float32")
    if classes:
        raw = None
        for band in classes:
            native = _nested_grid(scenes, band, grid) if reflectance else None
            if native is not None:  # read natively, repeat pixels: no warp
                like = variables[reflectance[0]]
                variables[band] = _upsampled(scenes, band, grid, *native, like=like,
                                             chunk_size=limits.chunk_size)
                continue
            if raw is None:
                raw = _stack(scenes, classes, grid, resampling="nearest",
                             chunk_size=limits.chunk_size)
            variables[band] = raw.sel(band=band, drop=True).astype("uint8")

    cube = xr.Dataset(variables)
    keep = {"time", "x", "y", "id"}
    cube = cube.drop_vars([c for c in cube.coords if c not in keep])
    cube = cube.assign_coords(
        time=("time", np.array([s.datetime.replace(tzinfo=None) for s in scenes],
                               dtype="datetime64[ns]")),
        id=("time", [s.id for s in scenes]),
    )
    cube.attrs = {"crs": f"EPSG:{grid.epsg}", "resolution": grid.resolution,
                  "skipped": skipped}
    cube = cube.rio.write_crs(f"EPSG:{grid.epsg}").rio.write_transform(grid.transform)
    return cube
