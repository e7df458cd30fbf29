"""The Processing provider: its algorithms are read from the configured servers when QGIS
loads it (``GET /processes``, then each description), so a new process on a server appears
after a reload, without a new plugin version."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from . import settings
from .algorithm import ProcessAlgorithm
from .network import client_for
from .ogc.client import ServerError
from .ogc.schema import algorithm_spec
from .translate import tr

PROVIDER_ID = "sentinelle_processes"
LOG_TAG = "OGC API Processes"



def server_algorithms(connection, lang: str) -> list[ProcessAlgorithm]:
    """The algorithms of one server; a process whose description cannot be read is logged
    and left out, the others still load."""
    client = client_for(connection, lang)
    client.timeout = 20
    summaries = client.processes()
    collections = client.collections()
    found = []
    for item in summaries:
        try:
            description = client.process(item["id"])
            found.append(ProcessAlgorithm(connection, algorithm_spec(
                description, collections=collections, lang=lang), lang))
        except (ServerError, KeyError, TypeError, ValueError) as err:
            QgsMessageLog.logMessage(f"{connection.name} / {item.get('id')}: {err}", LOG_TAG,
                                     Qgis.Warning)
    return found


class Provider(QgsProcessingProvider):
    """« Processus OGC API » in the toolbox, one group per server."""

    def __init__(self, connections=None):
        super().__init__()
        self._connections = connections

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return tr("Processus OGC API (Sentinelle)")

    def longName(self) -> str:
        return self.name()

    def icon(self):
        return QIcon(str(Path(__file__).with_name("icon.svg")))

    def loadAlgorithms(self):
        lang = settings.language()
        connections = self._connections if self._connections is not None \
            else settings.load_connections()
        for connection in connections:
            try:
                algorithms = server_algorithms(connection, lang)
            except Exception as err:  # one bad server must not break the toolbox
                message = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
                QgsMessageLog.logMessage(
                    tr("Serveur indisponible, ses processus ne sont pas chargés") +
                    f" — {connection.name} ({connection.url}): {message}", LOG_TAG,
                    Qgis.Warning)
                continue
            for algorithm in algorithms:
                self.addAlgorithm(algorithm)
            QgsMessageLog.logMessage(f"{connection.name}: {len(algorithms)} "
                                     + tr("processus chargés"), LOG_TAG, Qgis.Info)
