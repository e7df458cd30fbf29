"""API fuzzing: schemathesis generates requests for every operation of the server's own OpenAPI
document (``/openapi?f=json``), process executions included, and checks each answer: no 5xx,
a documented status and media type, a body that matches its documented schema, and no request
left hanging past its timeout.

A bounded, seeded run (a few examples per operation); ``benchmarks/fuzz.py`` is the long run.
The server gets small limits so that generated process executions stay small: the document
publishes the limits it can express (``maxItems`` of zones, map sizes), the pixel budget
bounds the rest.
"""

from __future__ import annotations

import pytest
import requests

from tests.conftest import start_server
from tests.fuzzing import LIMITS, fuzz, own_data

pytest.importorskip("schemathesis")

pytestmark = pytest.mark.server

#: seconds a single request may take before it counts as a hang
REQUEST_TIMEOUT = 60
#: generated cases per operation (plus the document's examples), with a fixed seed
EXAMPLES = 10
SEED = 20260110


@pytest.fixture(scope="module")
def fuzz_server(sample_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fuzz")
    srv = start_server(own_data(sample_dir, workdir), workdir, LIMITS)
    yield srv
    srv.stop()


def references(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_document_is_self_contained_and_declares_our_routes(fuzz_server):
    """No reference leaves the document (pygeoapi's point at schemas.opengis.net), every
    operation lists its errors, none hides behind a catch-all ``default``."""
    document = requests.get(f"{fuzz_server.url}/openapi?f=json", timeout=30).json()
    assert not [r for r in references(document) if not r.startswith("#/")]
    paths = document["paths"]
    for route in ("/wms", "/metadata/{recordId}.xml", "/download/{collectionId}.gpkg",
                  "/licences/{licenceId}", "/dashboard", "/vendor/{package}/{file}",
                  "/collections/bretagne-ndvi/map/legend"):
        assert route in paths, route
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "options" or not isinstance(operation, dict):
                continue
            assert "default" not in operation["responses"], (method, path)
            assert "200" in operation["responses"], (method, path)
    body = paths["/processes/zonal-statistics/execution"]["post"]["requestBody"]
    inputs = body["content"]["application/json"]["schema"]["properties"]["inputs"]
    assert set(inputs["required"]) == {"zones", "datetime"}
    zones = inputs["properties"]["zones"]["oneOf"][0]["properties"]["features"]
    assert zones["maxItems"] == int(LIMITS["SENTINELLE_MAX_ZONES"])


def test_no_server_error_and_every_answer_as_documented(fuzz_server):
    """Every operation, valid and invalid inputs: no 5xx, no undocumented status, media type
    or header, every body valid against its schema, no request past its timeout."""
    report = fuzz(fuzz_server.url, max_examples=EXAMPLES, phases=("examples", "fuzzing"),
                  seed=SEED, request_timeout=REQUEST_TIMEOUT)
    print(report.summary())
    documented = requests.get(f"{fuzz_server.url}/openapi?f=json", timeout=30).json()
    operations = {f"{method.upper()} {path}" for path, item in documented["paths"].items()
                  for method in item if method in ("get", "post", "put", "delete", "options")}
    # schemathesis leaves out the operation that serves the document it reads
    assert report.operations == operations - {"GET /openapi"}
    assert report.requests > 3 * len(operations)
    assert not report.failures, report.summary()


#: requests the fuzzer found answered 5xx, or answered in a way the document did not say
FOUND = [
    # pygeoapi: gzip promised, plain body sent (clients fail to decode it)
    ("GET", "/conformance?f=xyz", {"headers": {"Accept-Encoding": "gzip"}}, 400,
     "Invalid format"),
    ("GET", "/collections/sentinel-2-l2a/items?f=csv", {}, 400, "feature collections"),
    ("GET", "/collections/bretagne-parcels/items?sortby=", {}, 400, "sortby"),
    ("GET", "/collections/bretagne-parcels/items?sortby=id,", {}, 400, "sortby"),
    ("GET", "/collections/bretagne-s2/map?bbox=-1.6,48.1,-1.59,48.11"
            "&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/999999", {}, 400, "bbox-crs"),
    ("POST", "/processes/spectral-index/execution", {"json": [1]}, 400, "JSON object"),
    ("POST", "/processes/spectral-index/execution",
     {"json": {"inputs": {}, "subscriber": "x"}}, 400, "subscriber"),
    ("POST", "/processes/spectral-index/execution",
     {"json": {"inputs": {"area": [-1.6, 48.1, -1.59, 48.11], "datetime": "2024-05-17",
                          "crs": -537}}}, 400, "unknown CRS"),
    ("POST", "/collections/sentinel-2-l2a/items", {}, 415, "Content-Type"),
]


@pytest.mark.parametrize("method, path, kwargs, status, words", FOUND)
def test_found_by_fuzzing_is_a_clear_client_error(fuzz_server, method, path, kwargs, status,
                                                   words):
    response = requests.request(method, fuzz_server.url + path, timeout=60, **kwargs)
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    assert words in response.json()["description"]


def test_errors_are_labelled_json_once(fuzz_server):
    """pygeoapi labelled a legend's JSON error ``image/png`` when asked ``f=png`` and sent two
    Content-Type headers with map errors."""
    legend = requests.get(f"{fuzz_server.url}/collections/bretagne-s2/map/legend?f=png",
                          timeout=60)
    assert legend.status_code == 404
    assert legend.headers["Content-Type"].split(";")[0] == "application/json"
    assert legend.json()["description"]
    bad = requests.get(f"{fuzz_server.url}/collections/bretagne-s2/map?bbox=1,2,3", timeout=60)
    assert bad.status_code == 400
    types = bad.raw.headers.getlist("Content-Type")
    assert len(types) == 1 and types[0].startswith("application/json")


def test_empty_jsonld_page_and_dismissed_job_are_valid_json(fuzz_server):
    page = requests.get(f"{fuzz_server.url}/collections/bretagne-parcels/items",
                        params={"f": "jsonld", "commune": "none"}, timeout=60)
    assert page.status_code == 200
    assert page.json()["features"] == []
    job = requests.post(f"{fuzz_server.url}/processes/spectral-index/execution",
                        json={"inputs": {"area": [-1.6, 48.1, -1.59, 48.11],
                                         "datetime": "2024-05-17"}},
                        headers={"Prefer": "respond-async"}, timeout=60)
    assert job.status_code == 201
    dismissed = requests.delete(job.headers["Location"], timeout=60)
    assert dismissed.status_code == 200
    assert dismissed.headers["Content-Type"].startswith("application/json")
    assert dismissed.json()["type"] == "process"
    assert dismissed.json()["status"] == "dismissed"


def test_wms_exception_with_control_characters_in_the_request(fuzz_server):
    """The WMS echoes bad values in its exception report; a control character (here in
    VERSION) made the XML writer fail (a 500)."""
    response = requests.get(f"{fuzz_server.url}/wms", timeout=60,
                            params={"SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": ":\x15<"})
    assert response.status_code == 400
    assert "xml" in response.headers["Content-Type"]
    assert b"ServiceException" in response.content and b"VERSION" in response.content
