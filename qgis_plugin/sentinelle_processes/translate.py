"""Qt translation of the plugin's own texts (French in the code, ``i18n/*.ts`` for English);
one context for the whole plugin, so that ``build.py --update-ts`` finds every text."""

from qgis.PyQt.QtCore import QCoreApplication

CONTEXT = "SentinelleProcesses"


def tr(message: str) -> str:
    return QCoreApplication.translate(CONTEXT, message)
