"""``/dashboard``: a map dashboard for regional authorities (issue 9).

One static page (``sentinelle/web/dashboard/index.html``) with plain JavaScript
(``dashboard/app.js``, no build step) that talks to the server's own OGC APIs:
Maps (true colour / NDVI images for the current view), Features (parcels,
communes, planning zones), Records/Coverages metadata (available dates) and
Processes (zonal statistics time series, asynchronous jobs). Libraries
(OpenLayers, Chart.js, Bootstrap CSS) come from ``/vendor/`` (npm, pinned in
package-lock.json): the page loads nothing from another host.

Register with ``app.register_blueprint(dashboard.BLUEPRINT)``; the page's own
files are served at ``/dashboard/static/<file>``. URLs in the page are
relative, so the dashboard also works behind a reverse proxy with a prefix.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent / "dashboard"

#: Same policy as the HTML templates (templates/_offline.html): this server only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
       "worker-src 'self' blob:; object-src 'none'; base-uri 'self'")

BLUEPRINT = Blueprint("dashboard", __name__)


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@BLUEPRINT.route("/dashboard", methods=["GET"])
def page() -> Response:
    """The dashboard page (French by default, ``?lang=en`` or the FR/EN switch)."""
    response = send_from_directory(STATIC_DIR, "index.html", mimetype="text/html",
                                   max_age=0)
    response.headers["Content-Language"] = "fr"
    return _secure(response)


@BLUEPRINT.route("/dashboard/", methods=["GET"])
def page_slash() -> Response:
    """The page's relative URLs need ``/dashboard`` without the trailing slash."""
    return redirect("../dashboard", code=301)


@BLUEPRINT.route("/dashboard/static/<path:filename>", methods=["GET"])
def static_file(filename: str) -> Response:
    """The dashboard's own JavaScript and CSS (``sentinelle/web/dashboard/``)."""
    if filename == "index.html":
        return redirect("../../dashboard", code=301)
    return _secure(send_from_directory(STATIC_DIR, filename, max_age=300))
