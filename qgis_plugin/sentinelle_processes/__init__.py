"""Sentinelle — OGC API Processes for QGIS Processing.

The pure parts (``sentinelle_processes.ogc``) import without QGIS; the QGIS parts are only
imported by :func:`classFactory`, which QGIS calls when it loads the plugin."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import SentinelleProcessesPlugin

    return SentinelleProcessesPlugin(iface)
