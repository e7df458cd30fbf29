"""What a French Guiana hub costs: storage per year, bandwidth against whole-tile downloads,
machine size — from real tile sizes and the hub's measured ratios.  Feeds ``deploy/hub.md``.

Inputs, all read, none invented silently:

* **real tile sizes**: the Copernicus Data Space item in ``../shared/data/stac-items/``
  (``file:size`` of each L2A asset, JPEG 2000) for the bytes of one date of one tile; the
  Earth Search v1 items (Croatia) for the grids (``proj:shape``: 10980² at 10 m, 5490² at 20 m);
* **the territory and its communes**: ``../shared/data/admin/`` (IGN Admin Express);
* **the hub's measured ratios**: ``build/hub-benchmark.json`` written by ``benchmarks/hub.py``
  (bytes fetched over the least possible, bytes stored per byte of whole tile per km²);
* **assumptions**, printed with the results and changeable by options: dates per year at a
  point (5-day revisit of two satellites: 73), share of dates kept by the cloud filter, COG block
  size of the upstream (Earth Search: 1024 px), years kept.

    python benchmarks/hub_costs.py [--benchmark build/hub-benchmark.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import shapely
import shapely.geometry
from pyproj import Geod, Transformer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CDSE_ITEM = "xcube-stac__cdse__S2B_MSIL2A_20200705T101559_N0500_R065_T32TNT_20230530T175912.json"
#: our bands → the CDSE asset at native resolution
CDSE_KEYS = {"blue": "B02_10m", "green": "B03_10m", "red": "B04_10m", "nir": "B08_10m",
             "swir16": "B11_20m", "scl": "SCL_20m"}
#: the coastal communes where most Guianese live and most land-use change happens
COASTAL = {"97302": "Cayenne", "97307": "Matoury", "97309": "Remire-Montjoly",
           "97305": "Macouria", "97313": "Montsinéry-Tonnegrande", "97304": "Kourou",
           "97312": "Sinnamary", "97303": "Iracoubo", "97306": "Mana",
           "97311": "Saint-Laurent-du-Maroni", "97361": "Awala-Yalimapo", "97310": "Roura"}
UTM22 = "EPSG:32622"
TILE_KM = 109.8
GB = 1e9


def tile_bytes(bands) -> dict[str, int]:
    item = json.loads((SHARED / "stac-items" / CDSE_ITEM).read_text())
    return {band: int(item["assets"][CDSE_KEYS[band]]["file:size"]) for band in bands}


def tile_grids() -> dict[str, list[int]]:
    folder = SHARED / "earthsearch-v1-croatia" / "sentinel-2-l2a"
    item = json.loads(next(folder.glob("*/*.json")).read_text())
    return {band: item["assets"][band]["proj:shape"] for band in ("red", "scl")}


def _utm(geometry: shapely.Geometry) -> shapely.Geometry:
    to_utm = Transformer.from_crs("OGC:CRS84", UTM22, always_xy=True)
    return shapely.transform(geometry, to_utm.transform, interleaved=False)


def _circle(point: shapely.Point, radius_m: float) -> shapely.Geometry:
    """A circle of ``radius_m`` around a lon/lat point, as a lon/lat polygon."""
    to_utm = Transformer.from_crs("OGC:CRS84", UTM22, always_xy=True)
    to_lonlat = Transformer.from_crs(UTM22, "OGC:CRS84", always_xy=True)
    centre = shapely.Point(to_utm.transform(point.x, point.y))
    return shapely.transform(centre.buffer(radius_m, 16), to_lonlat.transform,
                             interleaved=False)


def _km2(geometry: shapely.Geometry) -> float:
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geometry)[0]) / 1e6


def block_area_km2(box: tuple, block_m: float) -> float:
    """Area of the COG blocks a box touches (what range reads must download at least)."""
    x0, y0 = math.floor(box[0] / block_m), math.floor(box[1] / block_m)
    x1, y1 = math.ceil(box[2] / block_m), math.ceil(box[3] / block_m)
    return (x1 - x0) * (y1 - y0) * block_m * block_m / 1e6


def tile_extents(geometry_utm: shapely.Geometry) -> list[tuple[float, float, float, float]]:
    """≈ the MGRS tiles over a geometry: 109.8 km squares on a 100 km UTM grid (9.8 km
    overlap), those meeting the geometry.  (The west of Guiana is in UTM 21; one zone is
    used here, which slightly undercounts tiles near 54° W.)"""
    minx, miny, maxx, maxy = geometry_utm.bounds
    out = []
    for i in range(int(minx // 100_000), int(maxx // 100_000) + 1):
        for j in range(int(miny // 100_000), int(maxy // 100_000) + 1):
            tile = (i * 1e5, (j + 1) * 1e5 - TILE_KM * 1000, i * 1e5 + TILE_KM * 1000,
                    (j + 1) * 1e5)
            if shapely.box(*tile).intersects(geometry_utm):
                out.append(tile)
    return out


def hub_clips(areas_utm: list[shapely.Geometry]) -> tuple[list[tuple], int]:
    """The boxes the hub would clip, tile by tile (:func:`part_boxes` + :func:`merge_boxes`,
    the planner's own functions), and the number of tiles with something to fetch."""
    from sentinelle.catalog.area import Area, parse_crs
    from sentinelle.catalog.hub.plan import merge_boxes, part_boxes

    crs = parse_crs(UTM22)
    boxes, tiles = [], 0
    for tile in tile_extents(shapely.union_all(areas_utm)):
        named = {}
        for index, geometry in enumerate(areas_utm):
            for k, box in enumerate(part_boxes(Area(geometry, crs), 32622, within=tile)):
                named[f"{index}-{k}"] = box
        merged = [box for _, box in merge_boxes(named)]
        tiles += bool(merged)
        boxes.extend(merged)
    return boxes, tiles


def scenario(name: str, areas: list[shapely.Geometry], *, per_km2: float, scl_per_km2: float,
             tile_date_bytes: float, measured: dict, args) -> dict:
    areas_utm = [_utm(a) for a in areas]
    boxes, tiles = hub_clips(areas_utm)
    clip_km2 = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) / 1e6
    blocks_km2 = sum(block_area_km2(b, args.block_px * 10) for b in boxes)
    dates, kept = args.dates_per_year, args.dates_per_year * args.kept_share
    # per date: SCL windows for the cloud check (every date), all bands for the kept ones
    fetch_check = blocks_km2 * scl_per_km2 * measured["fetched_over_least"]
    fetch_kept = blocks_km2 * per_km2 * measured["fetched_over_least"]
    stored_date = clip_km2 * per_km2 * measured["stored_over_whole"]
    return {
        "name": name, "area_km2": round(sum(_km2(a) for a in areas)),
        "clip_km2": round(clip_km2), "boxes": len(boxes), "tiles": tiles,
        "fetched_per_year_gb": (dates * fetch_check + kept * fetch_kept) / GB,
        "whole_kept_per_year_gb": kept * tiles * tile_date_bytes / GB,
        "whole_all_per_year_gb": dates * tiles * tile_date_bytes / GB,
        "stored_per_year_gb": kept * stored_date / GB,
        "stored_total_gb": kept * stored_date * args.years / GB,
        "cpu_hours_per_year": kept * clip_km2 / 100 * measured["seconds_per_100km2"] / 3600,
        "largest_box_mpx": max(((b[2] - b[0]) / 10) * ((b[3] - b[1]) / 10) for b in boxes) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", type=Path, default=REPO / "build" / "hub-benchmark.json")
    parser.add_argument("--bands", default="blue,green,red,nir,swir16,scl")
    parser.add_argument("--dates-per-year", type=float, default=73.0)
    parser.add_argument("--kept-share", type=float, default=0.35,
                        help="share of dates under max_cloud over an area (Guiana is cloudy)")
    parser.add_argument("--block-px", type=int, default=1024, help="upstream COG block size")
    parser.add_argument("--years", type=int, default=3, help="years kept online")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    bands = args.bands.split(",")

    sizes = tile_bytes(bands)
    grids = tile_grids()
    tile_km2 = TILE_KM * TILE_KM
    tile_date = sum(sizes.values())
    per_km2 = tile_date / tile_km2  # compressed bytes per km² per date, all bands
    scl_per_km2 = sizes.get("scl", 0) / tile_km2
    bench = json.loads(args.benchmark.read_text())["loopback"]
    window = bench["window"]
    whole_per_km2_bench = window["whole_bytes"] / bench["tile_km2"]
    measured = {
        "fetched_over_least": bench["fetched_over_least"],
        # local COG (clip + overviews) bytes per km² over the whole tile's bytes per km²
        "stored_over_whole": window["stored_bytes"] / bench["area_km2"] / whole_per_km2_bench,
        "ratio_bytes_10km": bench["ratio_bytes"],
        "seconds_per_100km2": window["seconds"] / bench["area_km2"] * 100,
    }

    communes = json.loads((SHARED / "admin" / "communes-973-guyane.geojson").read_text())
    shapes = {f["properties"]["code"]: shapely.geometry.shape(f["geometry"])
              for f in communes["features"]}
    territory = shapely.geometry.shape(json.loads(
        (SHARED / "admin" / "departement-973-guyane.geojson").read_text())["geometry"])
    common = dict(per_km2=per_km2, scl_per_km2=scl_per_km2, tile_date_bytes=tile_date,
                  measured=measured, args=args)
    rows = [scenario("Île de Cayenne (3 communes)",
                     [shapes[c] for c in ("97302", "97307", "97309")], **common),
            scenario(f"Coastal communes ({len(COASTAL)})", [shapes[c] for c in COASTAL],
                     **common),
            scenario(f"10 km around each commune's point ({len(shapes)})",
                     [_circle(g.representative_point(), 10_000) for g in shapes.values()],
                     **common),
            scenario("Whole territory", [territory], **common)]

    # one sync of the largest case: CPU time from the benchmark's encode rate, memory from
    # the largest clip box (uint16 window + in-memory COG ≈ 3 copies)
    largest = max(r["largest_box_mpx"] for r in rows[:3])
    result = {"inputs": {"tile_bytes_per_date": sizes, "tile_grids": grids,
                         "tile_km2": round(tile_km2, 1), "bytes_per_km2_per_date": per_km2,
                         "assumptions": vars(args) | {"benchmark": str(args.benchmark)}},
              "measured": measured, "scenarios": rows,
              "memory_gb_largest_coastal_box": largest * 1e6 * 2 * 3 / GB}
    if args.markdown:
        print("| scenario | area km² | clipped km² (boxes) | tiles | fetched GB/yr | whole tiles, "
              "kept dates GB/yr | whole tiles, all dates GB/yr | stored GB/yr | stored "
              f"{args.years} yr GB | CPU h/yr |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['name']} | {r['area_km2']:,} | {r['clip_km2']:,} ({r['boxes']}) | "
                  f"{r['tiles']} | {r['fetched_per_year_gb']:,.0f} | "
                  f"{r['whole_kept_per_year_gb']:,.0f} | {r['whole_all_per_year_gb']:,.0f} | "
                  f"{r['stored_per_year_gb']:,.1f} | {r['stored_total_gb']:,.0f} | "
                  f"{r['cpu_hours_per_year']:.1f} |")
    else:
        print(json.dumps(result, indent=1, default=float))
    print(f"\ntile (CDSE T32TNT, {len(bands)} bands): {tile_date / 1e6:.0f} MB per date = "
          f"{per_km2 / 1e3:.1f} kB/km²; measured: fetched/least {measured['fetched_over_least']},"
          f" stored/whole per km² {measured['stored_over_whole']:.2f}, 10 km square ratio "
          f"{measured['ratio_bytes_10km']} ×, {measured['seconds_per_100km2']:.2f} s per 100 km²"
          f" (loopback); largest coastal box {largest:.0f} Mpx → ≈ "
          f"{result['memory_gb_largest_coastal_box']:.1f} GB peak per band")


if __name__ == "__main__":
    main()
