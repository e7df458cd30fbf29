"""The QGIS plugin's pure parts (``qgis_plugin/sentinelle_processes/ogc``), without QGIS, against
real servers: Sentinelle and stock pygeoapi.  What they produce is checked against the HTTP
API's own answers, not against the plugin."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from tests.qgis_helpers import PLUGIN_DIR, QGIS_PYTHON, start_stock_pygeoapi

sys.path.insert(0, str(PLUGIN_DIR))

from sentinelle_processes.ogc import jobs  # noqa: E402
from sentinelle_processes.ogc.client import Canceled, Client, ServerError  # noqa: E402
from sentinelle_processes.ogc.connections import Connection  # noqa: E402
from sentinelle_processes.ogc.results import payloads, read_csv  # noqa: E402
from sentinelle_processes.ogc.schema import (  # noqa: E402
    CRS84,
    InputError,
    algorithm_spec,
    input_spec,
)
from sentinelle_processes.ogc.territories import (  # noqa: E402
    attach_collections,
    parse_capabilities,
)

pytestmark = pytest.mark.server

BRITTANY = [-1.58, 48.08, -1.54, 48.11]


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    srv = start_stock_pygeoapi(tmp_path_factory.mktemp("stock-pygeoapi"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def specs(server):
    """Every Sentinelle process as the plugin reads it, in French and in English."""
    out = {}
    for lang in ("fr", "en"):
        client = Client(server.url, lang=lang)
        collections = client.collections()
        out[lang] = {p["id"]: algorithm_spec(client.process(p["id"]), collections=collections,
                                             lang=lang) for p in client.processes()}
    return out


def params(spec):
    return {p.name: p for p in spec.params}


def test_sentinelle_schemas_become_parameters(server, specs):
    si = specs["fr"]["spectral-index"]
    p = params(si)
    # area: an extent, a layer dissolved into one geometry, or a served feature
    assert [f.kind for f in si.inputs[0].forms] == ["extent", "layer", "served"]
    assert p["area"].kind == "extent" and p["area_layer"].geometry == "geometry"
    collections = requests.get(f"{server.url}/collections?f=json", timeout=30).json()
    features = [c["id"] for c in collections["collections"] if c.get("itemType") == "feature"]
    assert p["area_collection"].options == features  # feature collections only
    assert p["area_feature"].kind == "text"
    # dates: a start and an optional end; enums with their defaults; bounded numbers
    assert (p["datetime"].kind, p["datetime_end"].kind) == ("date", "date")
    assert p["index"].options[:2] == ["NDVI", "NDWI"] and p["index"].default == "NDVI"
    assert p["max_cloud"].minimum == 0 and p["max_cloud"].maximum == 100
    assert p["resolution"].minimum == 0 and p["resolution"].exclusive_minimum
    assert p["crs"].kind == "crs"
    assert [o.kind for o in si.outputs] == ["raster"] and si.asynchronous
    zs = params(specs["fr"]["zonal-statistics"])
    assert zs["zones"].kind == "layer" and zs["zones"].geometry == "features"
    assert zs["zones_id_field"].parent == "zones"
    assert zs["zones_filter"].kind == "text"
    assert zs["statistics"].multiple and zs["statistics"].default == [
        "mean", "std", "count", "valid_fraction"]
    assert not zs["datetime"].optional  # required input, its only form
    cd = specs["fr"]["change-detection"]
    assert {o.output_id: o.kind for o in cd.outputs} == {
        "changes": "vector", "raster": "raster", "classes": "raster", "summary": "json",
        "png": "file"}
    # titles and descriptions in the asked language (Accept-Language / lang=)
    assert specs["fr"]["spectral-index"].title == "Indice spectral Sentinel-2"
    assert specs["en"]["spectral-index"].title == "Sentinel-2 spectral index"
    assert "Zone" in params(specs["fr"]["spectral-index"])["area"].title
    assert "extent" in params(specs["en"]["spectral-index"])["area"].title


def test_values_encode_into_the_servers_forms(specs):
    si, zs = specs["en"]["spectral-index"], specs["en"]["zonal-statistics"]
    assert si.encode({"area": BRITTANY, "datetime": "2024-05-17"}) == {
        "area": BRITTANY, "datetime": "2024-05-17"}
    assert si.encode({"area_collection": "bretagne-communes", "area_feature": "35051",
                      "datetime": "2024-06-01", "datetime_end": "2024-08-31"}) == {
        "area": {"collection": "bretagne-communes", "id": "35051"},
        "datetime": "2024-06-01/2024-08-31"}
    geometry = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    layer = {"features": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": 1, "properties": {}, "geometry": geometry}]},
        "geometry": geometry}
    # a geometry input gets the layer's dissolved geometry; two forms at once is an error
    assert si.encode({"area_layer": layer})["area"] == geometry
    with pytest.raises(InputError, match="only one"):
        si.encode({"area_layer": layer, "area": BRITTANY})
    assert zs.encode({"zones": layer, "datetime": "2024-05-17", "statistics": ["mean"]}) == {
        "zones": layer["features"], "datetime": "2024-05-17", "statistics": ["mean"]}
    assert zs.encode({"zones_collection": "bretagne-parcels",
                      "zones_filter": "commune = '35051'", "datetime": "2024-05-17"})["zones"] \
        == {"collection": "bretagne-parcels", "filter": "commune = '35051'"}
    assert si.encode({"area": BRITTANY, "datetime_end": "2024-08-31"})["datetime"] == \
        "../2024-08-31"
    # what cannot be sent says why, in the user's language
    with pytest.raises(InputError, match="“Area” is required"):
        si.encode({"datetime": "2024-05-17"})
    with pytest.raises(InputError, match="must be > 0"):
        si.encode({"area": BRITTANY, "resolution": 0})
    with pytest.raises(InputError, match="doit être ≤ 100"):
        specs["fr"]["spectral-index"].encode({"area": BRITTANY, "max_cloud": 120})
    with pytest.raises(InputError, match="feature identifier"):
        si.encode({"area_collection": "bretagne-communes"})


def test_generic_schemas():
    """Forms other servers use: OGC bbox objects, date formats, arrays, booleans, objects."""
    ogc = input_spec("bbox", {"title": "BBox", "schema": {
        "type": "object", "required": ["bbox"], "format": "ogc-bbox",
        "properties": {"bbox": {"type": "array"}, "crs": {"type": "string"}}}})
    assert ogc.encode({"bbox": [1, 2, 3, 4]}) == {"bbox": [1.0, 2.0, 3.0, 4.0], "crs": CRS84}
    day = input_spec("when", {"schema": {"type": "string", "format": "date"}})
    assert day.params[0].kind == "date" and day.encode({"when": "2024-05-17"}) == "2024-05-17"
    numbers = input_spec("levels", {"schema": {"type": "array", "items": {"type": "number"}},
                                    "minOccurs": 0})
    assert numbers.params[0].multiple and numbers.encode({"levels": "1, 2.5,3"}) == [1, 2.5, 3]
    flag = input_spec("dry", {"schema": {"type": "boolean", "default": True}, "minOccurs": 0})
    assert flag.params[0].kind == "boolean" and flag.encode({"dry": False}) is False
    options = input_spec("options", {"schema": {"type": "object"}, "minOccurs": 0})
    assert options.params[0].kind == "json"
    assert options.encode({"options": '{"a": 1}'}) == {"a": 1}
    with pytest.raises(InputError, match="JSON"):
        options.encode({"options": "{a"})
    repeated = input_spec("tag", {"schema": {"type": "string", "enum": ["a", "b"]},
                                  "maxOccurs": "unbounded", "minOccurs": 0})
    assert repeated.params[0].multiple and repeated.encode({"tag": ["a", "b"]}) == ["a", "b"]


def test_async_job_results_equal_the_synchronous_answer(server, specs):
    spec = specs["en"]["spectral-index"]
    inputs = spec.encode({"area": BRITTANY, "datetime": "2024-05-17", "format": "json"})
    seen = []
    run = jobs.execute(Client(server.url, lang="en"), "spectral-index", inputs,
                       progress=lambda percent, message: seen.append((percent, message)))
    assert run.job_url and run.job_url.startswith(f"{server.url}/jobs/")
    assert seen[-1][1].startswith("successful")
    received = payloads(run.response, spec.outputs, ["result"])
    sync = requests.post(f"{server.url}/processes/spectral-index/execution",
                         json={"inputs": inputs}, timeout=120)
    assert sync.status_code == 200
    assert received["result"].json() == sync.json()


def test_several_outputs_decode_from_the_results_document(server, specs, sample_dir):
    spec = specs["en"]["change-detection"]
    inputs = {"area": [-52.45, 4.85, -52.35, 4.95], "before": "2024-07-01/2024-07-31",
              "after": "2024-08-01/2024-08-31"}
    client = Client(server.url, lang="en")
    run = jobs.execute(client, "change-detection", inputs,
                       outputs=spec.output_request(["changes", "classes", "summary"]))
    received = payloads(run.response, spec.outputs, ["changes", "classes", "summary"])
    assert set(received) == {"changes", "classes", "summary"}
    sync = requests.post(f"{server.url}/processes/change-detection/execution",
                         json={"inputs": inputs}, timeout=300).json()
    assert received["changes"].json() == sync["changes"]
    assert received["summary"].json() == sync["summary"]
    assert received["classes"].content == base64.b64decode(sync["classes"]["value"])
    assert received["classes"].kind == "raster"


def test_server_errors_are_the_servers_message(server):
    client = Client(server.url, lang="en")
    with pytest.raises(ServerError) as sync_error:
        client.execute("spectral-index", {"area": BRITTANY, "datetime": "2023-05-17"})
    direct = requests.post(f"{server.url}/processes/spectral-index/execution",
                           json={"inputs": {"area": BRITTANY, "datetime": "2023-05-17"}},
                           timeout=60).json()
    assert sync_error.value.status == 404
    assert direct["description"] in sync_error.value.message
    with pytest.raises(ServerError) as async_error:
        jobs.execute(client, "spectral-index", {"area": BRITTANY, "datetime": "2023-05-17"})
    assert direct["description"] in async_error.value.message
    with pytest.raises(ServerError, match="unreachable"):
        Client("http://127.0.0.1:9", timeout=5).processes()


def test_cancel_dismisses_the_job(server):
    """Between two polls, a cancel sends DELETE /jobs/{id}: the job reads dismissed."""
    inputs = {"zones": {"collection": "bretagne-parcels"}, "datetime": "2024-01-01/2024-12-31",
              "temporal": "series", "statistics": ["mean", "median", "p10", "p90"]}
    statuses = []
    with pytest.raises(Canceled) as canceled:
        jobs.execute(Client(server.url), "zonal-statistics", inputs,
                     progress=lambda p, m: statuses.append(m),
                     canceled=lambda: any(m.startswith("running") for m in statuses))
    status = requests.get(str(canceled.value), params={"f": "json"}, timeout=30).json()
    assert status["status"] == "dismissed"


def test_stock_pygeoapi_hello_world(stock):
    """Nothing Sentinelle-specific: pygeoapi's own example server lists and runs."""
    client = Client(stock.url, lang="fr")
    assert [p["id"] for p in client.processes()] == ["hello-world"]
    assert client.collections() == []
    spec = algorithm_spec(client.process("hello-world"), lang="fr")
    assert spec.title == "Bonjour le Monde"
    assert [(p.name, p.kind, p.optional) for p in spec.params] == [
        ("name", "text", False), ("message", "text", True)]
    inputs = spec.encode({"name": "QGIS", "message": "Bonjour"})
    run = jobs.execute(client, "hello-world", inputs)  # 201 + Location, empty body
    assert run.job_url
    received = payloads(run.response, spec.outputs, ["echo"])
    sync = requests.post(f"{stock.url}/processes/hello-world/execution",
                         json={"inputs": inputs}, timeout=30).json()
    assert received["echo"].json() == sync == {"id": "echo", "value": "Hello QGIS! Bonjour"}


def test_territories_from_the_wms_and_collections(server):
    capabilities = requests.get(f"{server.url}/wms", params={
        "SERVICE": "WMS", "REQUEST": "GetCapabilities", "VERSION": "1.3.0"}, timeout=60)
    territories = parse_capabilities(capabilities.content)
    assert len(territories) == 2
    collections = Client(server.url).collections()
    attach_collections(territories, collections)
    for territory in territories:
        prefix = territory.wms[0].name.split(":")[0]
        assert all(layer.name.startswith(prefix + ":") for layer in territory.wms)
        assert {c["id"].split("-")[0] for c in territory.collections} == {prefix}
        assert all(layer.times and layer.default_time in layer.times
                   for layer in territory.wms)


def test_connections_are_checked():
    connection = Connection("Région Bretagne", "https://sentinelle.example.fr/", "api-key",
                            "abc1234")
    assert connection.slug == "region_bretagne"
    assert connection.url == "https://sentinelle.example.fr"
    assert Connection.from_dict(connection.as_dict()) == connection
    with pytest.raises(ValueError, match="http"):
        Connection("x", "ftp://example.org")
    with pytest.raises(ValueError, match="auth"):
        Connection("x", "https://example.org", "password")


def test_csv_reading():
    header, rows = read_csv(b"id,mean\n1,0.5\n2,\n")
    assert header == ["id", "mean"] and rows[1] == {"id": "2", "mean": ""}


@pytest.mark.skipif(not os.path.exists(QGIS_PYTHON), reason=f"{QGIS_PYTHON} is missing")
def test_pure_parts_run_on_debians_python(server):
    """The Python QGIS embeds (Debian's) imports and runs the pure parts."""
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "from sentinelle_processes.ogc.client import Client\n"
        "from sentinelle_processes.ogc.schema import algorithm_spec\n"
        "c = Client(sys.argv[2], lang='en')\n"
        "s = algorithm_spec(c.process('zonal-statistics'), collections=c.collections())\n"
        "print(json.dumps([p.name for p in s.params]))\n")
    started = time.monotonic()
    done = subprocess.run([QGIS_PYTHON, "-c", script, str(PLUGIN_DIR), server.url],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[:4] == ["zones", "zones_id_field", "zones_collection",
                                          "zones_filter"]
    assert time.monotonic() - started < 60
