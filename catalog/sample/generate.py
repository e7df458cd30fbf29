"""Write the whole sample (two areas × ten dates, vectors, truth) into one folder.

The sample is small (≈ 53 MB), quick (≈ 12 s) and byte-for-byte reproducible for a seed, so
tests, demos and the docs can rely on it without any download.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
from affine import Affine
from tqdm import tqdm

from . import clouds, fullsize, imagery, truth, vectors
from .areas import AREAS, Area
from .classes import CLASSES
from .fields import rng
from .landscape import Landscape, build
from .readme import README
from .scene import ParcelModel, render

DEFAULT_SEED = 20240612


def generate(out_dir: str | Path, *, seed: int = DEFAULT_SEED, tile_size: int | None = None,
             progress: bool = False) -> dict:
    """Write the sample data into ``out_dir`` and return a summary (paths, counts, bytes).

    With ``tile_size`` only one full-size-like scene of ``tile_size``² pixels is written
    instead (10980 is a real Sentinel-2 tile), for benchmarks.
    """
    out = Path(out_dir)
    started = time.perf_counter()
    if tile_size is not None:
        summary = fullsize.generate(out, tile_size=tile_size, seed=seed, progress=progress)
    else:
        summary = _generate_sample(out, seed, progress)
    files = [p for p in out.rglob("*") if p.is_file()]
    summary.update(out_dir=str(out), files=len(files), bytes=sum(p.stat().st_size for p in files),
                   seconds=round(time.perf_counter() - started, 2))
    return summary


def _generate_sample(out: Path, seed: int, progress: bool) -> dict:
    tables = truth.TruthTables()
    items = []
    counts = {}
    steps = tqdm(total=sum(len(a.acquisitions) for a in AREAS), desc="sample-data",
                 disable=not progress)
    for area in AREAS:
        landscape = build(area, seed)
        vectors.write_area(landscape, out / "vectors")
        truth.write_landcover(landscape, out / "truth")
        tables.add_landscape(landscape)
        model = ParcelModel.draw(len(landscape.parcels.ids), rng(seed, "parcel-model", area.name))
        for index in range(len(area.acquisitions)):
            items.append(_write_scene(landscape, model, index, out / "catalog", tables, seed))
            steps.update()
        counts[area.name] = {"items": len(area.acquisitions),
                             "parcels": len(landscape.parcels.ids),
                             "communes": len(area.communes)}
    steps.close()
    vectors.write_areas_geojson(out / "vectors" / "areas.geojson")
    tables.write(out / "truth")
    catalog = imagery.write_catalog(out / "catalog", items, _description())
    (out / "README.md").write_text(README, encoding="utf-8")
    return {"catalog": str(catalog), "areas": counts}


def _write_scene(landscape: Landscape, model: ParcelModel, index: int, catalog: Path,
                 tables: truth.TruthTables, seed: int) -> dict:
    """Render one date of one area, write its six COGs and return its STAC item."""
    area = landscape.area
    acquisition = area.acquisitions[index]
    when = acquisition_time(area, index)
    sun = clouds.sun_position(*imagery.center_lonlat(area.bounds, area.epsg), when)
    rendering = render(landscape, model, acquisition, index, sun, seed)
    identifier = imagery.item_id(acquisition.platform, area.mgrs_tile, acquisition.date)
    folder = catalog / imagery.COLLECTION / identifier
    folder.mkdir(parents=True, exist_ok=True)
    for band in imagery.BANDS:
        data = rendering.scl if band.key == "scl" else rendering.bands[band.key]
        transform = landscape.transform @ Affine.scale(band.resolution / 10)
        imagery.write_cog(folder / f"{band.code}.tif", data, transform, area.epsg,
                          description=f"{band.code} {band.key}",
                          blocksize=512 if band.resolution == 10 else 256,
                          categorical=band.key == "scl")
    scl = rendering.scl
    tables.add_rendering(landscape, identifier, acquisition.date, rendering,
                         float(np.isin(scl, clouds.CLOUDY).mean()))
    return imagery.item(identifier, tile=area.mgrs_tile, epsg=area.epsg, when=when,
                        platform=acquisition.platform, bounds=area.bounds,
                        scl_counts=np.bincount(scl.ravel(), minlength=12), sun=sun)


def acquisition_time(area: Area, index: int) -> dt.datetime:
    """UTC time of acquisition ``index``: the area's overpass time, drifting a few seconds."""
    start = dt.datetime.combine(area.acquisitions[index].date, area.time_utc)
    return start + dt.timedelta(seconds=7 * index)


def _description() -> str:
    areas = "; ".join(f"{a.mgrs_tile}: {a.title}" for a in AREAS)
    names = ", ".join(f"{c.code} {c.name}" for c in CLASSES)
    return ("Synthetic Sentinel-2 L2A scenes (Earth Search v1 layout) over two 10 km areas "
            f"({areas}). Land-cover classes: {names}.")
