"""The catalog layer against a real STAC API on loopback (``rustac serve``), with the sample's
items migrated to STAC 1.1 (``proj:code``, ``bands``) as current APIs publish them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import requests

from sentinelle.catalog import Area, Grid, load_cube, parse_interval, search
from sentinelle.catalog.source import StacApiCatalog, StaticCatalog
from sentinelle.errors import NotFound, SourceUnavailable, UpstreamUnavailable
from tests.conftest import free_port


@pytest.fixture(scope="module")
def stac_api(sample_dir, tmp_path_factory):
    # the venv's scripts first: `make test` runs .venv/bin/python without activating the venv
    rustac = shutil.which("rustac", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if rustac is None:
        pytest.skip("rustac (pip install rustac) is not installed")
    work = tmp_path_factory.mktemp("stac-api")
    root = pystac.Catalog.from_file(str(sample_dir / "catalog" / "catalog.json"))
    features = []
    for item in root.get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        data = item.to_dict(include_self_link=False)
        data["links"] = []
        features.append(data)
    (work / "items.json").write_text(json.dumps({"type": "FeatureCollection",
                                                  "features": features}))
    collection = json.loads((sample_dir / "catalog" / "sentinel-2-l2a" /
                             "collection.json").read_text())
    collection["links"] = []  # the items are loaded from items.json
    (work / "collection.json").write_text(json.dumps(collection))
    port = free_port()
    process = subprocess.Popen(
        [rustac, "serve", "--addr", f"127.0.0.1:{port}", str(work / "collection.json"),
         str(work / "items.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/collections", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_api_search_matches_the_static_catalog(stac_api, sample_dir):
    api = StacApiCatalog(stac_api, "earth-search")
    static = StaticCatalog(sample_dir / "catalog")
    area = Area.from_bbox([-1.6, 48.08, -1.5, 48.12])
    interval = parse_interval("2024-05-01/2024-08-31")
    from_api = search(api, area, interval, max_cloud=5)
    from_files = search(static, area, interval, max_cloud=5)
    assert [m.scene.id for m in from_api] == [m.scene.id for m in from_files]
    assert [m.cloud_fraction for m in from_api] == [m.cloud_fraction for m in from_files]
    scene = api.get(from_api[0].scene.id)
    assert scene.assets["red"].scale == pytest.approx(1e-4)  # STAC 1.1 "bands" understood
    assert scene.assets["red"].offset == pytest.approx(-0.1)
    assert scene.epsg == 32630  # from proj:code


def test_api_scenes_load_the_same_pixels(stac_api, sample_dir):
    api = StacApiCatalog(stac_api, "earth-search")
    static = StaticCatalog(sample_dir / "catalog")
    area = Area.from_bbox([-1.58, 48.09, -1.56, 48.10])
    grid = Grid.from_area(area, 32630, 10)
    scene_id = "S2B_30UXU_20240517_0_L2A"
    a = load_cube([api.get(scene_id)], ["red", "nir"], grid).compute()
    b = load_cube([static.get(scene_id)], ["red", "nir"], grid).compute()
    np.testing.assert_array_equal(a["nir"].values, b["nir"].values)


def test_api_errors_are_clear(stac_api):
    with pytest.raises(NotFound, match="S2X_nope"):
        StacApiCatalog(stac_api, "earth-search").get("S2X_nope")
    down = StacApiCatalog(f"http://127.0.0.1:{free_port()}", "earth-search")
    with pytest.raises(UpstreamUnavailable, match="unavailable") as caught:
        down.find(Area.from_bbox([-1.6, 48.08, -1.5, 48.12]))
    assert isinstance(caught.value, SourceUnavailable) and caught.value.http_status == 503
    # a server answering an error: 502 with its status
    broken = StacApiCatalog(f"{stac_api}/no-such-api", "earth-search")
    with pytest.raises(SourceUnavailable, match="answered HTTP 404") as caught:
        broken.find(Area.from_bbox([-1.6, 48.08, -1.5, 48.12]))
    assert caught.value.http_status == 502
