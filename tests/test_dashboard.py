"""The /dashboard page (issue 9): offline, French first, wired to the server's own APIs.

(a) fast checks with requests: the page, its files and the vendored libraries are served, the
    page loads nothing from elsewhere, both language dictionaries hold every label the page uses,
    and the landing page links to the dashboard;
(b) Debian's Chromium driven by Playwright against the ``server`` fixture: every request is
    recorded (and any request to another host is blocked and reported), a click on a parcel
    shows its NDVI series (checked against ``zonal-statistics`` called directly), the CSV export
    downloads and parses, change detection runs as an asynchronous job whose progress is shown
    and whose polygons land on the map, the FR/EN switch changes the labels, the swipe
    comparison and the QGIS links work. Screenshots at 1366 × 768 go to ``test-artifacts/``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.test_html_offline import CHROMIUM, CHROMIUM_ARGS, loaded_refs, same_origin

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
STATIC = REPO / "sentinelle" / "web" / "dashboard"
VIEWPORT = {"width": 1366, "height": 768}
CLEARING = [-52.49, 4.81, -52.46, 4.83]


@pytest.fixture(scope="module")
def base_url(request) -> str:
    url = os.environ.get("SENTINELLE_TEST_URL")
    if url:
        return url.rstrip("/")
    return request.getfixturevalue("server").url.rstrip("/")


# --- (a) fast checks


def _dictionaries() -> dict[str, set[str]]:
    text = (STATIC / "i18n.js").read_text(encoding="utf-8")
    fr, en = text.split("\n  en: {", 1)
    key = re.compile(r"^\s+'([^']+)':", re.M)
    return {"fr": set(key.findall(fr)), "en": set(key.findall(en))}


def test_dictionaries_cover_the_page():
    """One dictionary per language, same keys, and every label the page or app.js asks for."""
    dicts = _dictionaries()
    assert dicts["fr"] and dicts["fr"] == dicts["en"], dicts["fr"] ^ dicts["en"]
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-title)?="([^"]+)"', html))
    app = (STATIC / "app.js").read_text(encoding="utf-8")
    used |= set(re.findall(r"\bt\('([a-z0-9.\-]+)'", app))
    used |= {"status." + s for s in ("accepted", "running", "successful", "failed", "dismissed")}
    used |= {"kind." + k for k in ("parcel", "commune", "zone")}
    missing = sorted(k for k in used if k not in dicts["fr"] and not k.endswith("."))
    assert not missing, missing


def test_no_remote_reference_in_sources():
    cdn = re.compile(r"https?://(?!www\.opengis\.net/def/)[^\s'\"]+")
    for path in STATIC.iterdir():
        assert not cdn.findall(path.read_text(encoding="utf-8")), path.name


@pytest.mark.server
def test_page_and_files_served(base_url):
    resp = requests.get(f"{base_url}/dashboard", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    refs = loaded_refs(resp.text)
    assert {"vendor/ol/dist/ol.js", "vendor/chart.js/dist/chart.umd.min.js",
            "dashboard/static/app.js"} <= {r for _, r in refs}
    for what, ref in refs:
        url = urljoin(f"{base_url}/dashboard", ref)
        if url.startswith("data:"):
            continue
        assert same_origin(url, base_url), f"{what} -> {ref}"
        got = requests.get(url, timeout=30)
        assert got.status_code == 200, f"{url}: {got.status_code}"
    assert requests.get(f"{base_url}/dashboard/static/nope.js", timeout=30).status_code == 404
    slash = requests.get(f"{base_url}/dashboard/", timeout=30, allow_redirects=False)
    assert slash.status_code == 301 and urlsplit(
        urljoin(f"{base_url}/dashboard/", slash.headers["Location"])).path == "/dashboard"


@pytest.mark.server
def test_landing_page_links_dashboard(base_url):
    fr = requests.get(f"{base_url}/?f=html&lang=fr", timeout=30).text
    en = requests.get(f"{base_url}/?f=html&lang=en", timeout=30).text
    assert re.search(r'href="[^"]*/dashboard\?lang=fr"[^>]*>Ouvrir le tableau de bord', fr)
    assert re.search(r'href="[^"]*/dashboard\?lang=en"[^>]*>Open the map dashboard', en)


# --- (b) browser


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"{CHROMIUM} missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as err:  # noqa: BLE001 - an unusable browser is a skip, not a failure
            pytest.skip(f"cannot start {CHROMIUM}: {err}")
        ARTIFACTS.mkdir(exist_ok=True)
        yield chromium
        chromium.close()


class Recorder:
    """Every request of a page: URLs, POST bodies, failures, HTTP errors, JavaScript errors."""

    def __init__(self, page, base_url):
        self.base_url = base_url
        self.urls, self.posts, self.failed, self.bad, self.errors = [], [], [], {}, []
        page.on("request", self._request)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: self.bad.__setitem__(r.url, r.status)
                if r.status >= 400 else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def _request(self, req):
        self.urls.append(req.url)
        if req.method == "POST":
            self.posts.append((req.url, req.post_data))

    def assert_clean(self, allow_http_errors: bool = False):
        outside = [u for u in self.urls
                   if not same_origin(u, self.base_url) and not u.startswith(("data:", "blob:"))]
        assert not outside, f"requests outside the server: {outside}"
        assert not self.failed, f"failed requests: {self.failed}"
        errors = self.errors
        if allow_http_errors:  # Chromium logs each 4xx/5xx response on the console
            errors = [e for e in errors if "the server responded with a status of" not in e]
        else:
            assert not self.bad, f"HTTP errors: {self.bad}"
        assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture()
def open_dashboard(browser, base_url):
    contexts = []

    def _open(query: str = "", lang: str = "fr-FR"):
        context = browser.new_context(viewport=VIEWPORT, locale=lang, service_workers="block",
                                      accept_downloads=True)
        contexts.append(context)

        def guard(route):  # never let a request leave the machine, but record it
            url = route.request.url
            if same_origin(url, base_url) or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                route.abort("blockedbyclient")

        context.route("**/*", guard)
        page = context.new_page()
        rec = Recorder(page, base_url)
        resp = page.goto(f"{base_url}/dashboard{query}", wait_until="networkidle", timeout=60_000)
        assert resp is not None and resp.status == 200
        page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
        page.wait_for_load_state("networkidle")
        return page, rec

    yield _open
    for context in contexts:
        context.close()


def settle(page):
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(400)  # let OpenLayers and Chart.js paint the last frame


def shot(page, name: str):
    settle(page)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"))


def click_parcel(page, base_url, collection="bretagne-parcels"):
    """Click, on the map, inside the largest parcel; returns its feature (from the API)."""
    from shapely.geometry import shape

    fc = requests.get(f"{base_url}/collections/{collection}/items",
                      params={"f": "json", "limit": 1, "sortby": "-area_m2"}, timeout=30).json()
    feature = fc["features"][0]
    point = shape(feature["geometry"]).representative_point()
    page.evaluate("([x, y]) => { const v = sentinelle.map.getView();"
                  " v.setCenter(ol.proj.fromLonLat([x, y])); v.setZoom(15); }", [point.x, point.y])
    settle(page)
    px = page.evaluate("([x, y]) => sentinelle.pixelOf(x, y)", [point.x, point.y])
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + px[0], box["y"] + px[1])
    page.wait_for_selector('#selection[data-state="done"]', timeout=60_000)
    return feature


@pytest.mark.server
def test_loads_offline(open_dashboard, base_url):
    page, rec = open_dashboard()
    info = page.evaluate("""() => ({
        parcels: sentinelle.layers.parcels.getSource().getFeatures().length,
        communes: sentinelle.layers.communes.getSource().getFeatures().length,
        zones: sentinelle.layers.zones.getSource().getFeatures().length,
        dates: sentinelle.state.dates, date: sentinelle.state.date,
        lang: document.documentElement.lang})""")
    meta = requests.get(f"{base_url}/collections/bretagne-s2?f=json", timeout=30).json()
    expected = sorted({d[:10] for d in meta["extent"]["temporal"]["grid"]["coordinates"]})
    assert info["dates"] == expected and info["date"] in expected
    assert page.locator("#date option").count() == len(expected)
    for name in ("parcels", "communes", "zones"):
        collection = "bretagne-" + name.replace("zones", "planning-zones")
        matched = requests.get(f"{base_url}/collections/{collection}/items",
                               params={"f": "json", "limit": 1}, timeout=30).json()
        assert info[name] == matched["numberMatched"], name  # every page of features loaded
    assert info["lang"] == "fr"
    maps = [u for u in rec.urls if "/collections/bretagne-s2/map?" in u]
    assert maps and "bbox-crs=http%3A%2F%2Fwww.opengis.net%2Fdef%2Fcrs%2FEPSG%2F0%2F3857" in maps[0]
    assert "Sélection" in page.inner_text("#panel nav")
    shot(page, "fr-bretagne")
    rec.assert_clean()


@pytest.mark.server
def test_parcel_click_shows_series(open_dashboard, base_url):
    page, rec = open_dashboard()
    feature = click_parcel(page, base_url)
    assert page.evaluate("() => sentinelle.state.selection.id") == feature["id"]
    assert feature["id"] in page.inner_text("#sel-title")
    chart = page.evaluate("() => { const c = sentinelle.chart();"
                          " return {labels: c.data.labels, data: c.data.datasets[0].data}; }")
    # the same request, sent independently, gives the same last value
    url, body = [p for p in rec.posts if p[0].endswith("/processes/zonal-statistics/execution")][-1]
    body = json.loads(body)
    assert body["inputs"]["temporal"] == "series"
    assert body["inputs"]["zones"] == {"collection": "bretagne-parcels",
                                       "filter": f"id = '{feature['id']}'"}
    resp = requests.post(url, json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    series = resp.json()["features"][0]["properties"]["series"]
    assert len(series) >= 3 and len(chart["data"]) == len(series)
    assert chart["data"][-1] == pytest.approx(series[-1]["mean"], abs=1e-9)
    assert chart["labels"][-1] == series[-1]["datetime"][:10]
    assert page.locator("#props td", has_text="area_m2").count() == 1
    shot(page, "parcel-series")
    rec.assert_clean()


@pytest.mark.server
def test_csv_export(open_dashboard, base_url):
    page, rec = open_dashboard()
    feature = click_parcel(page, base_url)
    with page.expect_download() as info:
        page.click("#csv")
    download = info.value
    assert download.suggested_filename == f"ndvi-parcel-{feature['id']}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    data = page.evaluate("() => sentinelle.chart().data.datasets[0].data")
    assert len(rows) == len(data) >= 3
    assert {r["id"] for r in rows} == {feature["id"]} and {r["variable"] for r in rows} == {"NDVI"}
    assert [float(r["mean"]) for r in rows] == pytest.approx(data, abs=1e-12)
    assert all(0 < float(r["valid_fraction"]) <= 1 for r in rows)
    rec.assert_clean()


@pytest.mark.server
def test_change_detection_job(open_dashboard, base_url):
    page, rec = open_dashboard("?area=guyane")
    page.evaluate(f"() => sentinelle.fitLonLat({CLEARING})")
    page.click("[data-tab=analysis]")
    page.select_option("#process", "change-detection")
    assert page.input_value("#an-before") == "2024-07-01/2024-07-31"
    assert page.input_value("#an-after") == "2024-08-01/2024-08-31"
    page.click("#run")
    page.wait_for_selector("#job:not([hidden])", timeout=30_000)
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    # the progress as the job reported it: accepted/running below 100 %, then 100 %
    log = page.evaluate("() => [...document.querySelectorAll('#job-log li')]"
                        ".map(li => [li.dataset.status, Number(li.dataset.progress)])")
    assert len(log) >= 2 and log[0][1] < 100 and log[-1] == ["successful", 100], log
    assert page.inner_text("#job-bar").strip() == "100 %"
    job_id = page.inner_text("#job-id")
    status = requests.get(f"{base_url}/jobs/{job_id}?f=json", timeout=30).json()
    assert status["status"] == "successful" and status["processID"] == "change-detection"
    changes = page.evaluate("""() => sentinelle.layers.resultVector.getSource().getFeatures()
        .map(f => ({type: f.get('type'), area: f.get('area_ha'),
                    centre: sentinelle.map.getPixelFromCoordinate(
                        ol.extent.getCenter(f.getGeometry().getExtent()))}))""")
    assert len(changes) == 1 and changes[0]["type"] == "loss", changes
    assert changes[0]["area"] == pytest.approx(26, abs=1.5)
    size = page.evaluate("() => sentinelle.map.getSize()")
    x, y = changes[0]["centre"]
    assert 0 < x < size[0] and 0 < y < size[1], "the change polygon is not in view"
    assert "26.0 ha" in page.inner_text("#result-summary")
    labels = page.locator("#downloads a").all_inner_texts()
    for output in ("changes.geojson", "raster.tif", "classes.tif", "summary.json", "png.png"):
        assert output in labels, labels
    with page.expect_download() as info:
        page.click("#downloads a:text-is('changes.geojson')")
    geo = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert geo["type"] == "FeatureCollection" and geo["features"][0]["properties"]["type"] == "loss"
    with page.expect_download() as info:
        page.click("#downloads a:text-is('classes.tif')")
    assert Path(info.value.path()).read_bytes()[:4] in (b"II*\x00", b"MM\x00*")
    shot(page, "change-detection")
    rec.assert_clean()


@pytest.mark.server
def test_classification_image(open_dashboard):
    page, rec = open_dashboard("?area=guyane")
    page.evaluate(f"() => sentinelle.fitLonLat({CLEARING})")
    page.click("[data-tab=analysis]")
    page.select_option("#process", "classification")
    page.fill("#an-datetime", "2024-10-21")
    page.click("#run")
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    assert page.evaluate("() => !!sentinelle.layers.resultImage.getSource()")
    assert page.locator("#result-legend .legend-swatch").count() == 5
    assert "arbres" in page.inner_text("#result-legend")
    shot(page, "classification")
    rec.assert_clean()


@pytest.mark.server
def test_english_switch(open_dashboard):
    page, rec = open_dashboard()
    assert page.inner_text("#csv") == "Exporter la série (CSV)"
    page.click(".lang-switch [data-lang=en]")
    assert page.evaluate("() => document.documentElement.lang") == "en"
    nav = page.inner_text("#panel nav")
    assert "Selection" in nav and "Compare" in nav and "Sélection" not in nav
    assert page.inner_text("#csv") == "Export the series (CSV)"
    assert page.inner_text("label:has(#lyr-s2)").strip() == "True colour"
    assert "lang=en" in page.url
    shot(page, "en")
    page.reload(wait_until="networkidle")  # the choice sticks (URL and localStorage)
    page.wait_for_selector('body[data-ready="1"]')
    assert page.inner_text("#run") == "Run"
    page.click(".lang-switch [data-lang=fr]")
    assert page.inner_text("#run") == "Lancer le traitement"
    rec.assert_clean()


@pytest.mark.server
def test_compare_and_gis_links(open_dashboard, base_url):
    page, rec = open_dashboard("?area=guyane")
    page.evaluate(f"() => sentinelle.fitLonLat({CLEARING})")  # the clearing, before and after
    page.click("[data-tab=compare]")
    page.select_option("#cmp-left", "2024-07-13")
    page.select_option("#cmp-right", "2024-08-12")
    page.click("#cmp-toggle")
    settle(page)
    assert page.is_visible("#swipe-box")
    page.fill("#swipe", "43")  # the line crosses the clearing
    for date in ("2024-07-13", "2024-08-12"):
        assert any("/collections/guyane-s2/map?" in u and f"datetime={date}" in u for u in rec.urls)
    shot(page, "compare")
    page.click("[data-tab=gis]")
    assert page.input_value("#gis-wms") == f"{base_url}/wms"
    assert page.input_value("#gis-ogc") == base_url
    map_url = page.input_value("#gis-map")
    assert requests.get(map_url, timeout=60).headers["Content-Type"] == "image/png"
    page.click("#gis-wms + button")
    page.wait_for_selector("#gis-links button:text('Copié !')", timeout=5_000)
    shot(page, "gis")
    rec.assert_clean()


@pytest.mark.server
def test_server_error_in_plain_french(open_dashboard):
    page, rec = open_dashboard()
    page.click("[data-tab=analysis]")
    page.select_option("#process", "spectral-index")
    page.fill("#an-datetime", "2030-01-01")  # no scene: the job fails with the server's reason
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    text = page.inner_text("#error-text")
    assert text.startswith("Le traitement n'a pas abouti.") and "Détail :" in text
    page.click("#error-close")
    assert page.is_hidden("#error")
    # a synchronous 4xx: the series of a parcel over dates without any scene (404 + description)
    page.evaluate("""() => { sentinelle.state.dates = ['2030-01-01', '2030-12-31'];
        return sentinelle.select(sentinelle.layers.parcels.getSource().getFeatures()[0]); }""")
    page.wait_for_selector('#selection[data-state="error"]', state="attached", timeout=60_000)
    text = page.inner_text("#error-text")
    assert text.startswith("Aucune donnée ne correspond à cette demande"), text
    assert "Détail : no Sentinel-2 scene covers the area between 2030-01-01" in text
    shot(page, "error")
    rec.assert_clean(allow_http_errors=True)
