"""The plugin object QGIS creates: registers the provider (also headless, through
``initProcessing``), its translations, and in the GUI two menu entries — the servers, and a
territory's layers in one click."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

from . import settings
from .provider import Provider
from .translate import tr

HERE = Path(__file__).parent



class SentinelleProcessesPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None
        self.actions = []
        self.translator = QTranslator()
        qm = HERE / "i18n" / f"sentinelle_processes_{settings.language()}.qm"
        if qm.exists() and self.translator.load(str(qm)):
            QCoreApplication.installTranslator(self.translator)

    def initProcessing(self):
        if self.provider is None:
            self.provider = Provider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def reload(self):
        """Read the servers' processes again (after adding a server or a process)."""
        if self.provider is not None:
            self.provider.refreshAlgorithms()

    def initGui(self):
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        icon = QIcon(str(HERE / "icon.svg"))
        menu = tr("Processus OGC API")
        for label, slot in ((tr("Serveurs…"), self.show_connections),
                            (tr("Ajouter les couches d'un territoire…"), self.show_territory),
                            (tr("Recharger les processus"), self.reload)):
            action = QAction(icon, label, self.iface.mainWindow())
            action.triggered.connect(slot)
            self.iface.addPluginToWebMenu(menu, action)
            self.actions.append((menu, action))

    def show_connections(self):
        from .gui.connections import ConnectionsDialog

        if ConnectionsDialog(self.iface.mainWindow()).exec_():
            self.reload()

    def show_territory(self):
        from .gui.territory import TerritoryDialog

        TerritoryDialog(self.iface.mainWindow()).exec_()

    def unload(self):
        for menu, action in self.actions:
            self.iface.removePluginWebMenu(menu, action)
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        QCoreApplication.removeTranslator(self.translator)
