"""Where the plugin keeps its connections (QGIS settings, per profile) and which language it
speaks (the QGIS locale)."""

from __future__ import annotations

import json

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QLocale

from .ogc.connections import Connection
from .ogc.i18n import language as _language

KEY = "sentinelle_processes/connections"


def load_connections() -> list[Connection]:
    """The configured servers (invalid entries are skipped, not fatal)."""
    raw = QgsSettings().value(KEY, "[]")
    try:
        items = json.loads(raw) if isinstance(raw, str) else list(raw or [])
    except ValueError:
        items = []
    found = []
    for item in items:
        try:
            found.append(Connection.from_dict(item))
        except (TypeError, ValueError):
            continue
    return found


def save_connections(connections: list[Connection]) -> None:
    QgsSettings().setValue(KEY, json.dumps([c.as_dict() for c in connections]))


def locale() -> str:
    settings = QgsSettings()
    if settings.value("locale/overrideFlag", False, type=bool):
        return settings.value("locale/userLocale", "") or QLocale().name()
    return QLocale().name()


def language() -> str:
    """``fr`` or ``en``: what servers are asked for and the plugin's texts are shown in."""
    return _language(locale())
