"""Drive a headless QGIS for the plugin tests (run by Debian's ``/usr/bin/python3``, since the
test venv cannot import ``qgis``): ``python3 qgis_runner.py SPEC.json OUT.json``.

SPEC: ``plugins`` (the folder holding ``sentinelle_processes``; default: the profile's own
``python/plugins``, i.e. an installed zip), ``auth`` (``master`` password and ``configs`` stored
in the profile's authentication database), ``connections`` (saved in the profile's settings
first), ``locale``, ``actions`` — each ``{"do": "list"}``, ``{"do": "run", "algorithm",
"params", "layers": {param: path}, "cancel": {"url", "process"}}`` or ``{"do": "territory",
"url"}``.  OUT: one JSON result per action, plus the plugin's metadata as QGIS read it.
Assertions stay in pytest; this script only reports what QGIS did.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

from qgis.core import (  # noqa: E402  (Debian's QGIS Python)
    QgsApplication,
    QgsProcessingFeedback,
    QgsRasterLayer,
    QgsSettings,
    QgsVectorLayer,
)


class Feedback(QgsProcessingFeedback):
    """Keeps every message and progress value, to report them to pytest."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.progress: list[float] = []
        self.progressChanged.connect(self.progress.append)

    def pushInfo(self, info):  # noqa: N802 (QGIS's names)
        self.lines.append(info)

    def pushWarning(self, warning):  # noqa: N802
        self.lines.append(warning)

    def pushDebugInfo(self, info):  # noqa: N802
        self.lines.append(info)

    def pushCommandInfo(self, info):  # noqa: N802
        self.lines.append(info)

    def setProgressText(self, text):  # noqa: N802
        self.lines.append(text)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.errors.append(error)


def _json(url: str):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read().decode("utf-8"))


def _cancel_when_running(feedback: Feedback, spec: dict, report: dict) -> threading.Thread:
    """Cancel the run once the server lists its job as running (with some progress)."""

    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not feedback.isCanceled():
            try:
                jobs = _json(f"{spec['url']}/jobs?f=json&limit=50").get("jobs", [])
            except OSError:
                jobs = []
            for job in jobs:
                if job.get("processID") == spec["process"] and job.get("status") == "running" \
                        and job.get("jobID") not in spec.get("ignore", []):
                    report["job_id"] = job["jobID"]
                    report["canceled_at"] = time.time()
                    feedback.cancel()
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def run(action: dict) -> dict:
    import processing
    from qgis.core import QgsProcessingException

    params = dict(action.get("params", {}))
    keep = []
    for name, path in (action.get("layers") or {}).items():
        layer = QgsVectorLayer(path, name, "ogr")
        assert layer.isValid(), path
        keep.append(layer)
        params[name] = layer
    feedback = Feedback()
    report: dict = {}
    watcher = _cancel_when_running(feedback, action["cancel"], report) \
        if action.get("cancel") else None
    started = time.time()
    try:
        results = processing.run(action["algorithm"], params, feedback=feedback)
        error = None
    except QgsProcessingException as err:
        results, error = {}, str(err)
    report.update(finished_at=time.time(), elapsed=time.time() - started, error=error,
                  errors=feedback.errors, log=feedback.lines, progress=feedback.progress,
                  canceled=feedback.isCanceled())
    if watcher is not None:
        watcher.join(timeout=1)
    report["results"] = {k: v if isinstance(v, (str, int, float, type(None))) else str(v)
                         for k, v in results.items()}
    layers = {}
    for name, value in report["results"].items():
        if isinstance(value, str) and os.path.isfile(value):
            if value.endswith((".tif", ".tiff")):
                layer = QgsRasterLayer(value, name, "gdal")
                layers[name] = {"valid": layer.isValid(), "type": "raster",
                                "bands": layer.bandCount() if layer.isValid() else 0,
                                "renderer": layer.renderer().type() if layer.isValid() else None,
                                "crs": layer.crs().authid()}
            elif value.endswith((".gpkg", ".geojson", ".shp")):
                layer = QgsVectorLayer(value, name, "ogr")
                layers[name] = {"valid": layer.isValid(), "type": "vector",
                                "features": layer.featureCount() if layer.isValid() else 0,
                                "geometry": layer.geometryType() if layer.isValid() else None,
                                "fields": layer.fields().names() if layer.isValid() else []}
    report["layers"] = layers
    return report


def describe() -> dict:
    from qgis.core import QgsProcessingDestinationParameter

    provider = QgsApplication.processingRegistry().providerById("sentinelle_processes")
    if provider is None:
        return {"provider": None, "algorithms": []}
    algorithms = []
    for alg in provider.algorithms():
        params = []
        for p in alg.parameterDefinitions():
            entry = {"name": p.name(), "type": p.type(), "description": p.description(),
                     "optional": bool(p.flags() & p.FlagOptional),
                     "destination": isinstance(p, QgsProcessingDestinationParameter),
                     "default": p.defaultValue() if isinstance(
                         p.defaultValue(), (str, int, float, list, type(None))) else str(
                         p.defaultValue())}
            if hasattr(p, "options"):
                entry["options"] = p.options()
            if hasattr(p, "minimum"):
                entry["minimum"], entry["maximum"] = p.minimum(), p.maximum()
            if hasattr(p, "allowMultiple"):
                entry["multiple"] = p.allowMultiple()
            params.append(entry)
        algorithms.append({"id": alg.id(), "name": alg.displayName(), "group": alg.group(),
                           "params": params, "help": alg.shortHelpString(),
                           "outputs": [o.name() for o in alg.outputDefinitions()]})
    return {"provider": provider.name(), "algorithms": algorithms}


def territory(action: dict) -> dict:
    from sentinelle_processes.gui.layers import territories, territory_layers

    found = territories(action["url"])
    report = {"territories": [t.title for t in found], "layers": []}
    if found:
        chosen = next((t for t in found if action.get("title", "") in t.title), found[0])
        for layer in territory_layers(action["url"], chosen):
            info = {"name": layer.name(), "valid": layer.isValid(),
                    "provider": layer.providerType(), "source": layer.source()}
            temporal = layer.temporalProperties()
            info["temporal"] = bool(temporal and temporal.isActive())
            if isinstance(layer, QgsVectorLayer) and layer.isValid():
                info["features"] = layer.featureCount()
            report["layers"].append(info)
    return report


def store_auth(auth: dict) -> list:
    """Authentication configurations in the profile's own database (master password set)."""
    from qgis.core import QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    stored = [manager.setMasterPassword(auth["master"], True)]
    for item in auth["configs"]:
        config = QgsAuthMethodConfig(item.get("method", "Basic"))
        config.setId(item["id"])
        config.setName(item["id"])
        for key, value in item["config"].items():
            config.setConfig(key, value)
        result = manager.storeAuthenticationConfig(config)
        stored.append(result[0] if isinstance(result, tuple) else bool(result))
    return stored


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    settings = QgsSettings()
    if spec.get("locale"):
        settings.setValue("locale/overrideFlag", True)
        settings.setValue("locale/userLocale", spec["locale"])
    out: dict = {"profile": QgsApplication.qgisSettingsDirPath(), "actions": []}
    try:
        sys.path.append("/usr/share/qgis/python/plugins")
        from processing.core.Processing import Processing

        Processing.initialize()
        plugins = spec.get("plugins") or os.path.join(QgsApplication.qgisSettingsDirPath(),
                                                      "python", "plugins")
        sys.path.insert(0, plugins)
        import qgis.utils

        qgis.utils.plugin_paths = [plugins]
        qgis.utils.updateAvailablePlugins()
        out["available_plugins"] = list(qgis.utils.available_plugins)
        out["metadata"] = {key: qgis.utils.pluginMetadata("sentinelle_processes", key)
                           for key in ("name", "qgisMinimumVersion", "version",
                                       "hasProcessingProvider", "about", "tracker",
                                       "repository", "license", "icon")}
        if spec.get("auth"):
            out["auth"] = store_auth(spec["auth"])
        if spec.get("connections") is not None:
            from sentinelle_processes import settings as plugin_settings
            from sentinelle_processes.ogc.connections import Connection

            plugin_settings.save_connections([Connection.from_dict(c)
                                              for c in spec["connections"]])
        out["started"] = qgis.utils.startProcessingPlugin("sentinelle_processes")
        out["module"] = sys.modules["sentinelle_processes"].__file__
        for action in spec.get("actions", []):
            if action["do"] == "list":
                out["actions"].append(describe())
            elif action["do"] == "run":
                out["actions"].append(run(action))
            elif action["do"] == "territory":
                out["actions"].append(territory(action))
    except Exception:  # reported to pytest whole: this script is the test's eyes in QGIS
        out["exception"] = traceback.format_exc()
    Path(out_path).write_text(json.dumps(out, indent=1, default=str))
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
