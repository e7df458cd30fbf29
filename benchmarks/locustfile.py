"""Locust users of Sentinelle: the weighted mix of requests a regional SDI's clients send.

Each simulated user is a person (or a GIS client) that waits a think time between requests and
picks, by weight: WMS tiles at random positions, zooms and dates (the view service), maps,
Features with ``bbox`` or CQL2 ``filter``, scene Records, small NDVI coverage subsets (the
download service) and small synchronous processes (an index over one parcel, zonal statistics
on a few parcels). Responses are checked (status, media type), not only counted: a WMS
``ServiceExceptionReport`` or an HTML error page is a failure.

What to ask for is discovered from the server when the test starts (areas' extents, scene dates
and cloud cover, parcel ids and communes), so the file runs against any Sentinelle:

    locust -f benchmarks/locustfile.py --host http://127.0.0.1:5000 --headless -u 20 -t 60s

``benchmarks/loadtest.py`` starts the server, runs this file at 20 then 50 users and reports.
Environment: ``SENTINELLE_LOADTEST_AREAS`` (``bretagne,guyane``), ``SENTINELLE_LOADTEST_THINK``
(think time in seconds, ``0.5-2``), ``SENTINELLE_LOADTEST_TIMEOUT`` (client timeout, 60 s).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests
from locust import FastHttpUser, between, events, task

AREAS = [a for a in os.environ.get("SENTINELLE_LOADTEST_AREAS", "bretagne,guyane").split(",")
         if a]
_LOW, _, _HIGH = os.environ.get("SENTINELLE_LOADTEST_THINK", "0.5-2").partition("-")
THINK = (float(_LOW), float(_HIGH or _LOW))
TIMEOUT = float(os.environ.get("SENTINELLE_LOADTEST_TIMEOUT", "60"))
ORIGIN = 20037508.342789244  # half the Web-Mercator world, metres
ZOOMS = (12, 13, 14, 15, 15, 16, 16)  # tiles a map client asks for over a commune (weights)
INDICES = ("NDVI", "NDWI", "NDMI")
JSON = ("application/json", "application/geo+json")  # what ?f=json answers


@dataclass
class Area:
    """What the server publishes for one area, read once when the test starts."""

    name: str
    bbox: tuple[float, float, float, float]  # CRS84
    dates: list[str]  # every scene date (YYYY-MM-DD)
    clear: list[str]  # dates of scenes without cloud: processes and coverages always answer
    parcels: list[str]
    communes: list[str] = field(default_factory=list)
    parcel_communes: list[str] = field(default_factory=list)


PLAN: dict[str, Area] = {}


def discover(host: str, name: str) -> Area:
    """Extent, dates and ids of one area, from the OGC API like any client would read them."""
    def get(path: str, **params) -> dict:
        response = requests.get(f"{host}{path}", params={"f": "json", **params}, timeout=60)
        response.raise_for_status()
        return response.json()

    bbox = tuple(get(f"/collections/{name}-ndvi")["extent"]["spatial"]["bbox"][0])
    scenes = get("/collections/sentinel-2-l2a/items", bbox=",".join(map(str, bbox)),
                 limit=1000)["features"]
    cover = {f["properties"]["datetime"][:10]: f["properties"].get("eo:cloud_cover", 100)
             for f in scenes}
    least = min(cover.values())
    parcels = get(f"/collections/{name}-parcels/items", limit=1000, skipGeometry="true",
                  properties="id,commune")["features"]
    communes = get(f"/collections/{name}-communes/items", limit=1000,
                   skipGeometry="true")["features"]
    return Area(name, bbox, sorted(cover), sorted(d for d, c in cover.items() if c <= least),
                [f["properties"]["id"] for f in parcels],
                [str(f["properties"]["code"]) for f in communes],
                sorted({str(f["properties"]["commune"]) for f in parcels}))


@events.test_start.add_listener
def _plan(environment, **_kwargs) -> None:
    if not PLAN:
        PLAN.update({name: discover(environment.host.rstrip("/"), name) for name in AREAS})


# --- what a request asks for ----------------------------------------------------------------

def sub_box(area: Area, rng: random.Random, low: float, high: float) -> str:
    """A random CRS84 box inside the area, ``low``–``high`` of its width a side."""
    minx, miny, maxx, maxy = area.bbox
    share = rng.uniform(low, high)
    width, height = (maxx - minx) * share, (maxy - miny) * share
    x, y = rng.uniform(minx, maxx - width), rng.uniform(miny, maxy - height)
    return f"{x:.6f},{y:.6f},{x + width:.6f},{y + height:.6f}"


def tile(area: Area, rng: random.Random) -> str:
    """Web-Mercator bounds of the XYZ tile, at a random zoom, holding a random point of the
    area (as a slippy-map client asks for them; edge tiles are partly outside)."""
    minx, miny, maxx, maxy = area.bbox
    lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
    x = (lon + 180) / 360 * ORIGIN * 2 - ORIGIN
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137.0
    size = 2 * ORIGIN / 2 ** rng.choice(ZOOMS)
    col, row = math.floor((x + ORIGIN) / size), math.floor((ORIGIN - y) / size)
    return (f"{-ORIGIN + col * size:.3f},{ORIGIN - (row + 1) * size:.3f},"
            f"{-ORIGIN + (col + 1) * size:.3f},{ORIGIN - row * size:.3f}")


class Client(FastHttpUser):
    """One user of the regional SDI (weights: share of each kind of request in the mix)."""

    wait_time = between(*THINK)
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT

    def on_start(self) -> None:
        self.rng = random.Random()

    def area(self) -> Area:
        return PLAN[self.rng.choice(AREAS)]

    def check(self, method: str, path: str, name: str, media: str | tuple[str, ...], *,
              params=None, body=None) -> None:
        """One request; a failure unless 200 with (one of) the expected media type(s)."""
        url = f"{path}?{urlencode(params)}" if params else path
        with self.client.request(method, url, name=name, json=body,
                                 catch_response=True) as response:
            kind = response.headers.get("Content-Type", "") if response.headers else ""
            if response.status_code == 0:  # no answer: connection refused, reset, timeout
                response.failure(f"no answer from {path}: {response.error!r}")
            elif response.status_code != 200:
                text = (response.text or "")[:200].replace("\n", " ")
                response.failure(f"HTTP {response.status_code} {path}: {text}")
            elif not kind.startswith(media):
                text = (response.text or "")[:200].replace("\n", " ")
                response.failure(f"{kind or 'no media type'} from {path}: {text}")

    # --- view service: WMS and Maps (most of the traffic) -----------------------------------

    @task(30)
    def wms_getmap(self) -> None:
        area = self.area()
        layer = "NDVI" if self.rng.random() < 0.7 else "OI.OrthoimageCoverage"
        params = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap",
                  "LAYERS": f"{area.name}:{layer}", "STYLES": "", "CRS": "EPSG:3857",
                  "BBOX": tile(area, self.rng), "WIDTH": 256, "HEIGHT": 256,
                  "FORMAT": "image/png", "TRANSPARENT": "TRUE"}
        if self.rng.random() < 0.9:  # else the default TIME: the latest clear date
            params["TIME"] = self.rng.choice(area.dates)
        self.check("GET", "/wms", "wms GetMap 256²", "image/png", params=params)

    @task(6)
    def wms_getfeatureinfo(self) -> None:
        area = self.area()
        params = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetFeatureInfo",
                  "LAYERS": f"{area.name}:NDVI", "QUERY_LAYERS": f"{area.name}:NDVI",
                  "STYLES": "", "CRS": "EPSG:3857", "BBOX": tile(area, self.rng),
                  "WIDTH": 256, "HEIGHT": 256, "I": self.rng.randrange(256),
                  "J": self.rng.randrange(256), "INFO_FORMAT": "application/json",
                  "TIME": self.rng.choice(area.dates)}
        self.check("GET", "/wms", "wms GetFeatureInfo", "application/json", params=params)

    @task(2)
    def wms_getcapabilities(self) -> None:
        params = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetCapabilities",
                  "LANGUAGE": self.rng.choice(("fre", "eng"))}
        self.check("GET", "/wms", "wms GetCapabilities", "text/xml", params=params)

    @task(8)
    def maps_png(self) -> None:
        area = self.area()
        product = self.rng.choice(("ndvi", "ndvi", "s2"))
        params = {"bbox": sub_box(area, self.rng, 0.1, 0.4), "width": 256, "height": 256,
                  "datetime": self.rng.choice(area.dates)}
        self.check("GET", f"/collections/{area.name}-{product}/map", "maps PNG 256²",
                   "image/png", params=params)

    # --- download service: Features, Records, Coverages --------------------------------------

    @task(12)
    def features_bbox(self) -> None:
        area = self.area()
        params = {"f": "json", "bbox": sub_box(area, self.rng, 0.03, 0.15), "limit": 50}
        self.check("GET", f"/collections/{area.name}-parcels/items", "features parcels bbox",
                   JSON, params=params)

    @task(8)
    def features_filter(self) -> None:
        area = self.area()
        if self.rng.random() < 0.5:
            path = f"/collections/{area.name}-parcels/items"
            cql = f"commune = '{self.rng.choice(area.parcel_communes)}'"
            params = {"f": "json", "filter": cql, "limit": 100}
        else:
            path = f"/collections/{area.name}-communes/items"
            params = {"f": "json", "filter": f"code = '{self.rng.choice(area.communes)}'"}
        self.check("GET", path, "features CQL2 filter", JSON, params=params)

    @task(8)
    def records_search(self) -> None:
        area = self.area()
        start = self.rng.randrange(1, 10)
        params = {"f": "json", "bbox": ",".join(map(str, area.bbox)), "limit": 20,
                  "datetime": f"2024-{start:02d}-01/2024-{start + 3:02d}-28"}
        if self.rng.random() < 0.5:
            params["filter"] = "eo:cloud_cover < 20"
        self.check("GET", "/collections/sentinel-2-l2a/items", "records search", JSON,
                   params=params)

    @task(6)
    def coverage_ndvi(self) -> None:
        area = self.area()
        params = {"f": "GTiff", "bbox": sub_box(area, self.rng, 0.05, 0.1),
                  "datetime": self.rng.choice(area.clear)}
        self.check("GET", f"/collections/{area.name}-ndvi/coverage", "coverages NDVI subset",
                   "image/tiff", params=params)

    # --- small synchronous processes ---------------------------------------------------------

    @task(3)
    def process_spectral_index(self) -> None:
        area = self.area()
        inputs = {"area": {"collection": f"{area.name}-parcels",
                           "id": self.rng.choice(area.parcels)},
                  "datetime": self.rng.choice(area.clear), "index": self.rng.choice(INDICES),
                  "format": "json"}
        self.check("POST", "/processes/spectral-index/execution", "process spectral-index",
                   "application/json", body={"inputs": inputs, "response": "raw"})

    @task(3)
    def process_zonal_statistics(self) -> None:
        area = self.area()
        ids = ", ".join(f"'{p}'" for p in self.rng.sample(area.parcels, self.rng.randint(2, 8)))
        fmt = self.rng.choice(("geojson", "csv"))
        inputs = {"zones": {"collection": f"{area.name}-parcels", "filter": f"id IN ({ids})"},
                  "datetime": self.rng.choice(area.clear),
                  "statistics": ["mean", "std", "count", "valid_fraction"], "format": fmt}
        self.check("POST", "/processes/zonal-statistics/execution",
                   "process zonal-statistics",
                   "application/geo+json" if fmt == "geojson" else "text/csv",
                   body={"inputs": inputs, "response": "raw"})
