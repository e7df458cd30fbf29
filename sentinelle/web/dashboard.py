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

from flask import Blueprint, Response, jsonify, redirect, send_from_directory

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


#: default periods of the dashboard's change analysis when a territory has no change preset
DEFAULT_CHANGE = {"before": None, "after": None, "threshold": 0.2}


def territories_document() -> dict:
    """What the dashboard needs of each territory (from the territory blocks): titles, extent,
    the collections it draws (by role), field aliases and units, the change defaults."""
    from sentinelle.territories import registry

    found = registry()
    out = []
    for territory in found.territories:
        optical = territory.optical
        if optical is None:
            continue
        try:
            bbox = [round(v, 6) for v in found.area(territory).bounds]
        except Exception:  # noqa: BLE001 - a territory whose area is broken is left out
            continue

        def role(name: str):
            layer = territory.layer(name)
            return layer.collection_id if layer else None

        change = dict(DEFAULT_CHANGE)
        preset = optical.derived.get("change") or {}
        change.update({k: preset[k] for k in ("before", "after", "threshold") if k in preset})
        fields = {layer.collection_id: {name: {"title": dict(info.title), "unit": info.unit}
                                        for name, info in layer.fields.items()}
                  for layer in territory.layers}
        out.append({
            "id": territory.id, "title": dict(territory.title), "bbox": bbox,
            "s2": optical.collection_id,
            "ndvi": optical.index_collection_id(optical.indices[0]) if optical.indices
            else None,
            "parcels": role("parcels") or role("agricultural-parcels"),
            "communes": role("communes"), "zones": role("planning-zones"),
            "fields": fields,
            "before": str(change["before"]) if change["before"] else None,
            "after": str(change["after"]) if change["after"] else None,
            "threshold": float(change["threshold"]),
        })
    return {"territories": out}


@BLUEPRINT.route("/dashboard/territories.json", methods=["GET"])
def territories() -> Response:
    """The territories the dashboard offers (generated from the configuration)."""
    response = jsonify(territories_document())
    response.headers["Cache-Control"] = "max-age=60"
    return _secure(response)
