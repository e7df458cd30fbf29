"""« Ajouter les couches d'un territoire » : pick a server and a territory, one click adds its
WMS-T imagery and OGC API Features layers in a group of the project."""

from __future__ import annotations

from qgis.core import QgsProject
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QListWidget,
    QMessageBox,
)

from .. import settings
from ..ogc.client import ServerError
from ..translate import tr
from .layers import territories, territory_layers


def add_to_project(title: str, layers: list, project=None) -> int:
    """Add the valid ``layers`` under a group named ``title``; the number added."""
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, title)
    added = 0
    for layer in layers:
        if layer.isValid():
            project.addMapLayer(layer, False)
            group.addLayer(layer)
            added += 1
    return added


class TerritoryDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle(tr("Couches d'un territoire"))
        self.connections = settings.load_connections()
        self.found = []
        form = QFormLayout(self)
        self.server = QComboBox()
        self.server.addItems([c.name for c in self.connections])
        self.server.currentIndexChanged.connect(self.load)
        form.addRow(tr("Serveur"), self.server)
        self.list = QListWidget()
        form.addRow(tr("Territoire"), self.list)
        self.status = QLabel()
        form.addRow(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText(tr("Ajouter"))
        buttons.accepted.connect(self.add)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        if self.connections:
            self.load()
        else:
            self.status.setText(tr("Aucun serveur : ajoutez-en un dans « Serveurs… »."))

    def load(self):
        self.list.clear()
        connection = self.connections[self.server.currentIndex()]
        try:
            self.found = territories(connection.url, lang=settings.language())
        except ServerError as err:
            self.found = []
            self.status.setText(err.message)
            return
        for territory in self.found:
            self.list.addItem(f"{territory.title} — {len(territory.wms)} WMS, "
                              f"{len(territory.collections)} OGC API Features")
        self.status.setText("" if self.found else tr("Ce serveur ne publie aucun territoire."))

    def add(self):
        row = self.list.currentRow()
        if row < 0:
            QMessageBox.information(self, self.windowTitle(), tr("Choisissez un territoire."))
            return
        connection = self.connections[self.server.currentIndex()]
        territory = self.found[row]
        added = add_to_project(territory.title, territory_layers(connection.url, territory))
        self.status.setText(tr("Couches ajoutées") + f" : {added}")
        self.accept()
