"""The Sentinelle web application: pygeoapi's blueprint plus our own routes, in one Flask app.

pygeoapi reads its configuration when ``pygeoapi.flask_app`` is imported, so the environment
is settled first, here: the administrator's configuration (``--config``,
``SENTINELLE_CONFIG``, else the repository's ``pygeoapi-config.yml``) is expanded into the
configuration pygeoapi loads — the territories' collections generated
(:mod:`sentinelle.territories.resources`) — written beside the OpenAPI document, and the
OpenAPI document is (re)generated when it is missing or older than that configuration.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask

from sentinelle.settings import DEFAULT_CONFIG, DEFAULT_OPENAPI, REPO_ROOT, data_dir
from sentinelle.territories.resources import is_generated, resolved_path, write_resolved

LOGGER = logging.getLogger(__name__)



def source_config(config: str | Path | None = None) -> Path:
    """The administrator's configuration: ``config``, ``SENTINELLE_CONFIG``, a
    ``PYGEOAPI_CONFIG`` that is not a generated one, else the repository's."""
    if config or os.environ.get("SENTINELLE_CONFIG"):
        return Path(config or os.environ["SENTINELLE_CONFIG"]).resolve()
    given = os.environ.get("PYGEOAPI_CONFIG")
    if given and not is_generated(Path(given)):
        return Path(given).resolve()
    return DEFAULT_CONFIG.resolve()


def configure_environment(config: str | Path | None = None,
                          openapi: str | Path | None = None) -> tuple[Path, Path]:
    """Set the variables pygeoapi and the configuration read, and write the configuration
    pygeoapi loads (territories expanded); returns (that configuration, openapi) paths."""
    source = source_config(config)
    openapi_path = Path(openapi or os.environ.get("PYGEOAPI_OPENAPI") or DEFAULT_OPENAPI)
    openapi_path = openapi_path.resolve()
    data = data_dir()
    os.environ["SENTINELLE_DATA"] = str(data)
    os.environ.setdefault("SENTINELLE_CATALOG", str(data / "catalog"))
    os.environ.setdefault("SENTINELLE_TEMPLATES", str(REPO_ROOT / "templates"))
    os.environ["SENTINELLE_CONFIG"] = str(source)
    config_path = write_resolved(source, resolved_path(source, openapi_path))
    os.environ["PYGEOAPI_CONFIG"] = str(config_path)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi_path)
    return config_path, openapi_path


def ensure_openapi(config_path: Path, openapi_path: Path) -> None:
    """Write the OpenAPI document if it is missing or older than the configuration, or was
    written for another access-control configuration."""
    from sentinelle.web import access

    if openapi_path.exists() and openapi_path.stat().st_mtime >= config_path.stat().st_mtime \
            and access.openapi_is_current(openapi_path):
        return
    import yaml
    from pygeoapi.openapi import generate_openapi_document

    from sentinelle.web.openapi import finalize

    openapi_path.parent.mkdir(parents=True, exist_ok=True)
    with config_path.open(encoding="utf-8") as handle:
        document = generate_openapi_document(handle, "yaml")
    document = finalize(yaml.safe_load(document))
    openapi_path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True),
                            encoding="utf-8")
    access.record_openapi(openapi_path)
    LOGGER.info("OpenAPI document written to %s", openapi_path)


#: OGC API Features Part 3 / CQL2 classes our providers implement (pygeoapi 0.21 omits them).
FILTER_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
]


def declare_filter_conformance() -> None:
    """Add the CQL2 filter classes to the ones pygeoapi lists for feature collections."""
    from pygeoapi.api import itemtypes

    for uri in FILTER_CONFORMANCE:
        if uri not in itemtypes.CONFORMANCE_CLASSES_FEATURES:
            itemtypes.CONFORMANCE_CLASSES_FEATURES.append(uri)


def refresh_extents() -> None:
    """Before a collection is described or searched, bring the temporal extents of the
    territories' collections up to date (:mod:`sentinelle.territories.extents`)."""
    from flask import request
    from pygeoapi import flask_app

    from sentinelle.territories import registry
    from sentinelle.territories.extents import refresh_every

    path = request.path
    if not (path.startswith("/collections") or path in ("/", "")):
        return
    try:
        refresh_every(flask_app.api_.config, registry())
    except Exception as err:  # noqa: BLE001 - describing stale extents beats failing
        LOGGER.warning("temporal extents not refreshed: %s", err)


def map_legend(collection_id: str):
    """``/collections/{id}/map/legend``: pygeoapi 0.21 has the API function but no route."""
    from flask import request
    from pygeoapi.api import maps as maps_api
    from pygeoapi.flask_app import execute_from_flask

    return execute_from_flask(maps_api.get_collection_map_legend, request, collection_id)


def create_app(config: str | Path | None = None, openapi: str | Path | None = None) -> Flask:
    """The WSGI application (``gunicorn 'sentinelle.web.app:create_app()'``)."""
    config_path, openapi_path = configure_environment(config, openapi)
    ensure_openapi(config_path, openapi_path)
    (data_dir() / "results").mkdir(parents=True, exist_ok=True)

    from pygeoapi import flask_app

    from sentinelle.ows import metadata, wms
    from sentinelle.web import access, compat, dashboard, guards, vendor

    declare_filter_conformance()
    app = Flask(__name__, static_folder=None)
    access.install(app)  # execution and jobs: API keys / OIDC when configured (issue 10)
    app.url_map.strict_slashes = flask_app.APP.url_map.strict_slashes
    app.config.update(flask_app.APP.config)
    # temporal extents follow the catalogs; refreshed before the guards compare with them
    app.before_request(refresh_extents)
    guards.install(app)  # body size, JSON depth, ids, paths, bbox; errors as JSON (issue 10)
    app.register_blueprint(vendor.BLUEPRINT)
    app.register_blueprint(flask_app.BLUEPRINT)
    app.register_blueprint(wms.BLUEPRINT)
    app.register_blueprint(metadata.BLUEPRINT)
    app.register_blueprint(dashboard.BLUEPRINT)  # /dashboard (issue 9)
    if compat.needs_filter_lang_mapping():
        app.wsgi_app = compat.FilterLangMiddleware(app.wsgi_app)
    if compat.needs_coverage_bbox_fix():
        compat.patch_coverage_bbox_status()
    compat.install(app)  # pygeoapi 0.21 bugs found by API fuzzing (issue 10)
    from sentinelle.processes import jobs_api

    jobs_api.install()  # statusInfo bodies, ?status= filters, results of failed/dismissed jobs
    app.add_url_rule("/collections/<path:collection_id>/map/legend", "map_legend",
                     map_legend)
    missing = vendor.missing_assets()
    if missing:
        LOGGER.warning("front-end assets missing (%s…): run `npm ci --ignore-scripts` in %s",
                       missing[0], REPO_ROOT)
    return app
