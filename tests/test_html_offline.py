"""No HTML page may load anything from the internet (thin links in French Guiana).

(a) fast checks: pages fetched from the running server are parsed and every
    loading reference (<script src>, <link rel=stylesheet|icon|preload>, <img>,
    <iframe>, <source>, inline ``url()``/``@import``, Leaflet tile layers) must
    point at the server itself; every /vendor/ file they use must be served.
    Plus the vendor blueprint (whitelist, traversal, cache headers) and the
    base-map switch, without a server.
(b) browser check: Debian's Chromium driven by Playwright opens the main pages,
    records every request, and requires all of them to go to the server and
    succeed; the items page must show the Leaflet map with its features.
    Screenshots go to ``test-artifacts/``.

The running server comes from the ``server`` fixture (tests/conftest.py);
``SENTINELLE_TEST_URL=http://host:port`` points the tests at a server that is
already running instead.
"""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("SENTINELLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COLLECTION = "bretagne-parcels"

# <link rel=...> values that make the browser fetch the href
LOADING_RELS = {
    "stylesheet",
    "icon",
    "shortcut",
    "apple-touch-icon",
    "preload",
    "modulepreload",
    "prefetch",
    "manifest",
    "mask-icon",
}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""")
TILE_LAYER = re.compile(r"""L\.(?:TileLayer|tileLayer)(?:\.wms)?\(\s*['"]([^'"]*)['"]""")


# --- helpers


@pytest.fixture(scope="module")
def base_url(request) -> str:
    url = os.environ.get("SENTINELLE_TEST_URL")
    if url:
        return url.rstrip("/")
    return request.getfixturevalue("server").url.rstrip("/")


@pytest.fixture(scope="module")
def item_id(base_url) -> str:
    resp = requests.get(
        f"{base_url}/collections/{COLLECTION}/items", params={"f": "json", "limit": 1}, timeout=30
    )
    resp.raise_for_status()
    features = resp.json()["features"]
    assert features, f"{COLLECTION} has no items"
    return str(features[0]["id"])


def html_pages(item: str) -> list[str]:
    """Paths (with query) of the HTML pages checked."""
    coll = f"/collections/{COLLECTION}"
    return [
        "/?f=html",
        "/?f=html&lang=en",
        "/collections?f=html",
        f"{coll}?f=html",
        f"{coll}/items?f=html",
        f"{coll}/items/{item}?f=html",
        f"{coll}/queryables?f=html",
        f"{coll}/schema?f=html",
        "/conformance?f=html",
        "/processes?f=html",
        "/openapi?f=html",
        "/openapi?f=html&ui=redoc",
    ]


class LoadedRefs(HTMLParser):
    """Collects the URLs an HTML document makes the browser load."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []  # (what, url)
        self._in: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag in (
            "script",
            "img",
            "iframe",
            "source",
            "audio",
            "video",
            "embed",
            "track",
        ) and a.get("src"):
            self.refs.append((f"<{tag} src>", a["src"]))
        if tag in ("img", "source") and a.get("srcset"):
            for part in a["srcset"].split(","):
                if part.strip():
                    self.refs.append((f"<{tag} srcset>", part.split()[0]))
        if tag == "object" and a.get("data"):
            self.refs.append(("<object data>", a["data"]))
        if tag == "link" and LOADING_RELS & set(a.get("rel", "").lower().split()):
            self.refs.append((f"<link rel={a.get('rel')}>", a.get("href", "")))
        if tag == "video" and a.get("poster"):
            self.refs.append(("<video poster>", a["poster"]))
        if a.get("style"):
            self._css(f"<{tag} style>", a["style"])
        self._in = tag if tag in ("style", "script") else None
        self._text = []

    def handle_endtag(self, tag):
        text = "".join(self._text)
        if self._in == "style":
            self._css("<style>", text)
        elif self._in == "script":
            for url in TILE_LAYER.findall(text):
                if url:
                    self.refs.append(("L.TileLayer", url))
        self._in, self._text = None, []

    def handle_data(self, data):
        if self._in:
            self._text.append(data)  # may come in several pieces

    def _css(self, what, text):
        for m in CSS_URL.finditer(text):
            url = m.group(1) or m.group(2)
            if not url.startswith("data:"):
                self.refs.append((what, url))


def loaded_refs(html: str) -> list[tuple[str, str]]:
    parser = LoadedRefs()
    parser.feed(html)
    return parser.refs


def same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def fetch(base_url: str, path: str) -> str:
    resp = requests.get(base_url + path, timeout=60)
    assert resp.status_code == 200, f"{path}: HTTP {resp.status_code}"
    assert resp.headers["Content-Type"].startswith("text/html"), path
    return resp.text


# --- (a) fast checks


def test_parser_catches_remote_assets():
    """The checker itself: CDN references of pygeoapi's stock templates are found."""
    html = """<link rel="stylesheet" href="https://unpkg.com/bootstrap@5.1.3/dist/css/bootstrap.min.css">
    <link rel="shortcut icon" href="//cdn.example/favicon.ico">
    <link rel="alternate" href="https://example.org/other">
    <div itemscope itemtype="https://schema.org/WebAPI"></div>
    <a href="https://pygeoapi.io"><img src="/static/img/pygeoapi.png"></a>
    <style>@import 'https://fonts.googleapis.com/css?family=Roboto';</style>
    <script>map.addLayer(new L.TileLayer('https://tile.openstreetmap.org/{z}/{x}/{y}.png'));</script>"""
    urls = [u for _, u in loaded_refs(html)]
    assert urls == [
        "https://unpkg.com/bootstrap@5.1.3/dist/css/bootstrap.min.css",
        "//cdn.example/favicon.ico",
        "/static/img/pygeoapi.png",
        "https://fonts.googleapis.com/css?family=Roboto",
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    ]


@pytest.mark.server
def test_pages_load_nothing_from_elsewhere(base_url, item_id):
    problems, vendor_urls = [], set()
    for path in html_pages(item_id):
        page_url = base_url + path
        html = fetch(base_url, path)
        refs = loaded_refs(html)
        assert refs, f"{path}: no asset found at all (parser broken?)"
        for what, ref in refs:
            absolute = urljoin(page_url, ref)
            if not same_origin(absolute, base_url):
                problems.append(f"{path}: {what} -> {ref}")
            elif urlsplit(absolute).path.startswith("/vendor/"):
                vendor_urls.add(absolute)
    assert not problems, "pages load from outside the server:\n" + "\n".join(problems)
    # every vendored file used by a page is actually served (npm ci done, whitelist right)
    assert vendor_urls, "no page uses /vendor/ (templates not picked up?)"
    bad = {}
    for url in sorted(vendor_urls):
        resp = requests.get(url, timeout=30)
        if resp.status_code != 200:
            bad[url] = f"{resp.status_code} {resp.text.strip()[:200]}"
    assert not bad, bad


@pytest.mark.server
def test_vendor_assets_cached_and_typed(base_url):
    resp = requests.get(f"{base_url}/vendor/leaflet/dist/leaflet.js", timeout=30)
    assert resp.status_code == 200, resp.text
    assert "javascript" in resp.headers["Content-Type"]
    cache = resp.headers["Cache-Control"]
    assert "max-age=31536000" in cache and "immutable" in cache and "public" in cache
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    resp = requests.get(f"{base_url}/vendor/bootstrap/dist/css/bootstrap.min.css", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/css")
    for path in (
        "/vendor/leaflet/package.json",
        "/vendor/nope/x.js",
        "/vendor/leaflet/dist/..%2F..%2Fbootstrap%2Fpackage.json",
    ):
        resp = requests.get(base_url + path, timeout=30)
        assert resp.status_code == 404, path
        assert resp.headers["Content-Type"].startswith("text/plain")


@pytest.mark.server
def test_language_switch(base_url):
    html = fetch(base_url, "/collections?f=html")
    assert re.search(r'<a href="\?lang=fr"[^>]*>FR</a>', html), "no ?lang=fr link"
    assert re.search(r'<a href="\?lang=en"[^>]*>EN</a>', html), "no ?lang=en link"
    assert fetch(base_url, "/collections?f=html&lang=en").count('<html lang="en"') == 1
    assert fetch(base_url, "/collections?f=html&lang=fr").count('<html lang="fr"') == 1


@pytest.mark.server
def test_csp_restricts_to_server(base_url, item_id):
    """Each page carries a Content-Security-Policy limiting loads to the server."""
    for path in html_pages(item_id):
        html = fetch(base_url, path)
        m = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html)
        assert m, f"{path}: no CSP"
        for directive in m.group(1).split(";"):
            for source in directive.split()[1:]:
                assert source.startswith("'") or source in ("data:", "blob:") or "://" in source, (
                    f"{path}: odd CSP source {source}"
                )
                assert "://" not in source or not re.search(
                    r"unpkg|jsdelivr|cdnjs|googleapis|gstatic|openstreetmap", source
                ), path


# --- vendor blueprint (no server)


@pytest.fixture()
def vendor_app(monkeypatch, tmp_path):
    flask = pytest.importorskip("flask")
    from sentinelle.web import vendor

    root = tmp_path / "node_modules"
    (root / "leaflet" / "dist").mkdir(parents=True)
    (root / "leaflet" / "dist" / "leaflet.js").write_text("/* leaflet */")
    (root / "leaflet" / "package.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT")
    monkeypatch.setenv(vendor.ENV_VAR, str(root))
    app = flask.Flask("vendor-test")
    app.register_blueprint(vendor.BLUEPRINT)
    return vendor, app.test_client(), root


def test_vendor_blueprint_whitelist(vendor_app):
    _vendor, client, _root = vendor_app
    ok = client.get("/vendor/leaflet/dist/leaflet.js")
    assert ok.status_code == 200 and ok.data == b"/* leaflet */"
    assert ok.headers["Cache-Control"].replace(" ", "") in (
        "public,max-age=31536000,immutable",
        "max-age=31536000,public,immutable",
    )
    for path in (
        "/vendor/leaflet/package.json",  # not whitelisted
        "/vendor/leaflet/dist/../package.json",  # traversal
        "/vendor/leaflet/..%2f..%2fsecret.txt",
        "/vendor/leaflet/%2e%2e/%2e%2e/secret.txt",
        "/vendor/..%2fsecret.txt/x",
        "/vendor/evil/dist/x.js",  # unknown package
        "/vendor/bootstrap/dist/css/bootstrap.min.css",
    ):  # whitelisted, not installed
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert b"TOP-SECRET" not in resp.data and resp.mimetype == "text/plain", path
    assert b"npm ci" in client.get("/vendor/bootstrap/dist/css/bootstrap.min.css").data


def test_missing_assets(vendor_app):
    vendor, _, root = vendor_app
    missing = vendor.missing_assets()
    assert "bootstrap/dist/css/bootstrap.min.css" in missing
    assert "leaflet/dist/leaflet.js" not in missing
    assert len(missing) == sum(len(f) for f in vendor.ASSETS.values()) - 1
    for package, files in vendor.ASSETS.items():
        for path in files:
            target = root / package / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x")
    assert vendor.missing_assets() == []


def test_repo_node_modules_complete():
    """`npm ci --ignore-scripts` was run: every whitelisted file is installed."""
    from sentinelle.web import vendor

    if not (REPO / "node_modules").is_dir():
        pytest.skip("node_modules absent: run `npm ci --ignore-scripts`")
    assert vendor.missing_assets(REPO / "node_modules") == []


def test_npm_lock_only_registry():
    """package-lock.json pins exact versions from the npm registry, with integrity."""
    import json

    pkg = json.loads((REPO / "package.json").read_text())
    for name, spec in pkg["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec), f"{name}: {spec} is not an exact version"
    lock = json.loads((REPO / "package-lock.json").read_text())
    for key, entry in lock["packages"].items():
        if not key:
            continue
        resolved = entry.get("resolved")
        assert resolved is None or resolved.startswith("https://registry.npmjs.org/"), (
            key,
            resolved,
        )
        assert entry.get("integrity", "").startswith("sha512-"), key
        assert not entry.get("link"), key


# --- base map switch (no server)


def _render_items(map_url: str) -> str:
    from pygeoapi import l10n
    from pygeoapi.util import render_j2_template

    l10n._cfg_cache.clear()  # pygeoapi caches the translated config per locale

    config = {
        "server": {
            "url": "http://sdi.example:8080",
            "encoding": "utf-8",
            "language": "fr",
            "map": {"url": map_url, "attribution": "© local tiles"},
            "limits": {"default_items": 10},
        },
        "metadata": {
            "identification": {"title": "T", "description": "D", "keywords": ["k"]},
            "contact": {"email": "x@example.org"},
        },
        "resources": {},
    }
    data = {
        "type": "FeatureCollection",
        "title": "P",
        "numberMatched": 1,
        "links": [],
        "items_path": "http://sdi.example:8080/collections/p/items",
        "collections_path": "http://sdi.example:8080/collections",
        "dataset_path": "http://sdi.example:8080/collections/p",
        "features": [
            {
                "type": "Feature",
                "id": "a",
                "properties": {"name": "a"},
                "geometry": {"type": "Point", "coordinates": [-3, 48]},
            }
        ],
    }
    try:
        return render_j2_template(
            config, {"path": str(REPO / "templates")}, "collections/items/index.html", data, "fr"
        )
    finally:
        l10n._cfg_cache.clear()  # do not leave this fake config behind


def test_base_map_only_when_configured():
    html = _render_items("")
    assert "L.TileLayer" not in html and "/vendor/leaflet/dist/leaflet.js" in html
    assert not [u for _, u in loaded_refs(html) if not u.startswith("http://sdi.example:8080/")]
    html = _render_items("http://tiles.sdi.example/osm/{z}/{x}/{y}.png")
    assert ("L.TileLayer", "http://tiles.sdi.example/osm/{z}/{x}/{y}.png") in loaded_refs(html)
    assert "local tiles" in html
    assert "img-src 'self' http://sdi.example:8080 http://tiles.sdi.example data:" in html


def test_templates_compile_and_reference_no_cdn():
    """Every override parses, and no template source names a CDN or remote tile server."""
    from jinja2 import Environment, FileSystemLoader
    from pygeoapi.util import TEMPLATES

    env = Environment(
        loader=FileSystemLoader([str(REPO / "templates"), str(TEMPLATES)]),
        extensions=["jinja2.ext.i18n"],
    )
    for name in (
        "to_json",
        "format_datetime",
        "format_duration",
        "human_size",
        "get_path_basename",
        "get_breadcrumbs",
        "filter_dict_by_key_value",
    ):
        env.filters[name] = str
    cdn = re.compile(
        r"(?:https?:)?//[^\s\"'<>]*"
        r"(?:unpkg\.com|jsdelivr|cdnjs|googleapis|gstatic|openstreetmap|redoc\.ly)"
    )
    names = sorted(
        p.relative_to(REPO / "templates").as_posix() for p in (REPO / "templates").rglob("*.html")
    )
    assert "_base.html" in names and "openapi/swagger.html" in names
    for name in names:
        env.get_template(name)
        source = (REPO / "templates" / name).read_text()
        assert not cdn.search(source), name


# --- (b) browser


def _sync_playwright():
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"{CHROMIUM} missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    return sync_playwright


@pytest.mark.server
def test_browser_requests_stay_on_server(base_url, item_id):
    sync_playwright = _sync_playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    coll = f"/collections/{COLLECTION}"
    pages = {
        "landing": "/",
        "collections": "/collections",
        "collection": coll,
        "items": f"{coll}/items",
        "item": f"{coll}/items/{item_id}",
        "openapi": "/openapi?f=html",
        "redoc": "/openapi?f=html&ui=redoc",
    }
    report = []
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as err:  # noqa: BLE001 - an unusable browser is a skip, not a failure
            pytest.skip(f"cannot start {CHROMIUM}: {err}")
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="fr-FR", service_workers="block"
            )

            def guard(route):  # never let a request leave the machine, but record it
                if same_origin(route.request.url, base_url) or route.request.url.startswith(
                    ("data:", "blob:")
                ):
                    route.continue_()
                else:
                    route.abort("blockedbyclient")

            context.route("**/*", guard)

            for name, path in pages.items():
                page = context.new_page()
                requests_, failed, statuses, errors = [], [], {}, []
                page.on("request", lambda r, acc=requests_: acc.append(r.url))
                page.on("requestfailed", lambda r, acc=failed: acc.append(f"{r.url} ({r.failure})"))
                page.on("response", lambda r, acc=statuses: acc.__setitem__(r.url, r.status))
                page.on("pageerror", lambda e, acc=errors: acc.append(str(e)))
                page.on(
                    "console",
                    lambda m, acc=errors: (
                        acc.append(m.text)
                        if (m.type == "error" and "Content Security Policy" in m.text)
                        else None
                    ),
                )
                resp = page.goto(base_url + path, wait_until="networkidle", timeout=60_000)
                assert resp is not None and resp.status == 200, f"{name}: {resp and resp.status}"
                if name == "items":
                    page.wait_for_selector("#items-map .leaflet-interactive", timeout=20_000)
                    n = (
                        page.locator("#items-map path.leaflet-interactive").count()
                        + page.locator("#items-map .leaflet-marker-icon").count()
                    )
                    assert n > 0, "items map shows no feature"
                    if "L.TileLayer" not in page.content():  # no base map configured
                        assert page.locator("#items-map .leaflet-tile").count() == 0
                if name == "item":
                    page.wait_for_selector("#items-map .leaflet-interactive", timeout=20_000)
                if name == "openapi":
                    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
                    # expanding an operation resolves its $refs: must stay local too
                    page.locator(".opblock-summary").first.click()
                    page.wait_for_selector(".opblock-body", timeout=20_000)
                if name == "redoc":
                    page.wait_for_selector(".api-content h2", timeout=30_000)
                    assert "Something went wrong" not in page.inner_text("body")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(ARTIFACTS / f"offline-{name}.png"), full_page=True)
                outside = [
                    u
                    for u in requests_
                    if not same_origin(u, base_url) and not u.startswith(("data:", "blob:"))
                ]
                bad_status = {u: s for u, s in statuses.items() if s >= 400}
                report.append((name, len(requests_)))
                assert not outside, f"{name}: requests outside the server: {outside}"
                assert not failed, f"{name}: failed requests: {failed}"
                assert not bad_status, f"{name}: HTTP errors: {bad_status}"
                assert not errors, f"{name}: JavaScript errors: {errors}"
                page.close()
        finally:
            browser.close()
    print("requests per page:", report)
