"""Serve the pinned front-end libraries (``package.json``) from ``node_modules``.

The HTML pages (``templates/``) load Bootstrap, Leaflet, Swagger UI, ReDoc...
from ``{server.url}/vendor/<package>/<path>`` instead of public CDNs, so that
no page needs the internet (thin links in French Guiana).

Only the files listed in :data:`ASSETS` (plus their ``.map`` source maps, when
present) are served; anything else gets a plain-text 404 explaining why.
Files come from ``<repo>/node_modules`` (``npm ci --ignore-scripts``), or from
the directory named by the ``SENTINELLE_VENDOR_DIR`` environment variable.

Register with ``app.register_blueprint(vendor.BLUEPRINT)`` (URL prefix
``/vendor``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Blueprint, Response, send_from_directory
from werkzeug.security import safe_join

from sentinelle.settings import REPO_ROOT

LOGGER = logging.getLogger(__name__)

REPO_DIR = REPO_ROOT
ENV_VAR = "SENTINELLE_VENDOR_DIR"
URL_PREFIX = "/vendor"
CACHE_MAX_AGE = 31536000  # one year: versions are pinned in package-lock.json

#: package name -> files (relative to the package folder) that may be served.
#: Keep in sync with the templates (tests/test_html_offline.py checks that
#: every /vendor/ URL used by a page is served).
ASSETS: dict[str, tuple[str, ...]] = {
    "bootstrap": (
        "dist/css/bootstrap.min.css",
        "dist/js/bootstrap.bundle.min.js",
    ),
    "leaflet": (
        "dist/leaflet.css",
        "dist/leaflet.js",
        "dist/images/layers.png",
        "dist/images/layers-2x.png",
        "dist/images/marker-icon.png",
        "dist/images/marker-icon-2x.png",
        "dist/images/marker-shadow.png",
    ),
    "leaflet.markercluster": (
        "dist/MarkerCluster.css",
        "dist/MarkerCluster.Default.css",
        "dist/leaflet.markercluster.js",
    ),
    "leaflet.vectorgrid": ("dist/Leaflet.VectorGrid.bundled.min.js",),
    # swagger-ui-dist has no dist/ folder: its documented assets sit at the root
    "swagger-ui-dist": (
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-16x16.png",
        "favicon-32x32.png",
        "oauth2-redirect.html",
        "oauth2-redirect.js",
    ),
    "redoc": ("bundles/redoc.standalone.js",),
    # the /dashboard page (sentinelle/web/dashboard/): OpenLayers full build, Chart.js UMD
    "ol": ("ol.css", "dist/ol.js"),
    "chart.js": ("dist/chart.umd.min.js",),
}

BLUEPRINT = Blueprint("vendor", __name__, url_prefix=URL_PREFIX)


def vendor_dir() -> Path:
    """Folder holding the npm packages (``node_modules``)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return REPO_DIR / "node_modules"


def is_allowed(package: str, path: str) -> bool:
    """True if ``package``/``path`` is whitelisted (a listed file or its ``.map``)."""
    files = ASSETS.get(package)
    if not files:
        return False
    if path in files:
        return True
    return path.endswith(".map") and path[: -len(".map")] in files


def missing_assets(directory: str | os.PathLike | None = None) -> list[str]:
    """Whitelisted files absent from the vendor folder, as ``package/path``.

    An empty list means every page can be served offline. Otherwise run
    ``npm ci --ignore-scripts`` at the repository root.
    """
    base = Path(directory) if directory is not None else vendor_dir()
    missing = []
    for package, files in ASSETS.items():
        for path in files:
            if not (base / package / path).is_file():
                missing.append(f"{package}/{path}")
    return missing


def log_missing_assets(logger: logging.Logger | None = None) -> list[str]:
    """Log a warning listing missing assets (if any); return them."""
    missing = missing_assets()
    if missing:
        (logger or LOGGER).warning(
            "%d front-end file(s) missing from %s (%s%s): run `npm ci --ignore-scripts` "
            "in %s, or HTML pages will lack styles, maps and API docs",
            len(missing),
            vendor_dir(),
            ", ".join(missing[:5]),
            ", ..." if len(missing) > 5 else "",
            REPO_DIR,
        )
    return missing


def _not_found(message: str) -> Response:
    response = Response(message + "\n", status=404, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@BLUEPRINT.route("/<package>/<path:path>", methods=["GET"])
def asset(package: str, path: str) -> Response:
    """Serve one whitelisted file of a vendored npm package."""
    if package not in ASSETS:
        return _not_found(
            f"Not found: /vendor/{package}/ is not a vendored package "
            f"(known: {', '.join(sorted(ASSETS))})."
        )
    if not is_allowed(package, path):
        return _not_found(
            f"Not found: {path} is not a served file of {package} "
            "(see ASSETS in sentinelle/web/vendor.py)."
        )
    package_dir = vendor_dir() / package
    # The whitelist already excludes '..' and absolute paths; safe_join is a
    # second guard (returns None if the path would escape package_dir).
    full = safe_join(str(package_dir), path)
    if full is None or not os.path.isfile(full):
        return _not_found(
            f"Not found: {package}/{path} is not installed in "
            f"{vendor_dir()}: run `npm ci --ignore-scripts` in {REPO_DIR}."
        )
    mimetype = "application/json" if path.endswith(".map") else None
    response = send_from_directory(package_dir, path, mimetype=mimetype, max_age=CACHE_MAX_AGE)
    response.cache_control.public = True
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
