"""« Serveurs… » : the OGC API – Processes servers whose processes become algorithms, each
with its credentials from the QGIS authentication manager."""

from __future__ import annotations

from qgis.gui import QgsAuthConfigSelect
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from .. import settings
from ..network import client_for
from ..ogc.client import ServerError
from ..ogc.connections import AUTH_MODES, Connection
from ..translate import tr


class ConnectionsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle(tr("Serveurs OGC API – Processes"))
        self.connections = settings.load_connections()
        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self.show_connection)
        left.addWidget(self.list)
        for label, slot in ((tr("Nouveau"), self.new), (tr("Supprimer"), self.remove)):
            button = QPushButton(label)
            button.clicked.connect(slot)
            left.addWidget(button)
        layout.addLayout(left)
        form = QFormLayout()
        self.name = QLineEdit()
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://sentinelle.example.fr")
        self.auth = QComboBox()
        labels = {"none": tr("Aucune"), "api-key": tr("Clé d'API (mot de passe d'une "
                                                      "configuration d'authentification)"),
                  "authcfg": tr("Configuration d'authentification QGIS (OAuth2/OIDC, Basic…)")}
        for mode in AUTH_MODES:
            self.auth.addItem(labels[mode], mode)
        self.header = QLineEdit("X-API-Key")
        self.authcfg = QgsAuthConfigSelect(self)
        form.addRow(tr("Nom"), self.name)
        form.addRow("URL", self.url)
        form.addRow(tr("Authentification"), self.auth)
        form.addRow(tr("En-tête de la clé"), self.header)
        form.addRow(tr("Configuration"), self.authcfg)
        actions = QHBoxLayout()
        for label, slot in ((tr("Tester"), self.test), (tr("Enregistrer"), self.store)):
            button = QPushButton(label)
            button.clicked.connect(slot)
            actions.addWidget(button)
        form.addRow(actions)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        layout.addLayout(form)
        self.refresh()

    def refresh(self):
        self.list.clear()
        self.list.addItems([c.name for c in self.connections])

    def show_connection(self, row: int):
        if 0 <= row < len(self.connections):
            c = self.connections[row]
            self.name.setText(c.name)
            self.url.setText(c.url)
            self.auth.setCurrentIndex(AUTH_MODES.index(c.auth))
            self.header.setText(c.api_key_header)
            self.authcfg.setConfigId(c.authcfg)

    def current(self) -> Connection:
        return Connection(self.name.text().strip() or self.url.text().strip(),
                          self.url.text(), self.auth.currentData(), self.authcfg.configId(),
                          self.header.text().strip() or "X-API-Key")

    def new(self):
        self.list.clearSelection()
        for widget in (self.name, self.url):
            widget.clear()
        self.auth.setCurrentIndex(0)

    def store(self) -> bool:
        try:
            connection = self.current()
        except ValueError as err:
            QMessageBox.warning(self, self.windowTitle(), str(err))
            return False
        names = [c.name for c in self.connections]
        if connection.name in names:
            self.connections[names.index(connection.name)] = connection
        else:
            self.connections.append(connection)
        self.refresh()
        return True

    def remove(self):
        row = self.list.currentRow()
        if 0 <= row < len(self.connections):
            del self.connections[row]
            self.refresh()

    def test(self):
        try:
            client = client_for(self.current(), settings.language())
            count = len(client.processes())
        except (ServerError, ValueError) as err:
            QMessageBox.warning(self, self.windowTitle(), getattr(err, "message", str(err)))
            return
        QMessageBox.information(self, self.windowTitle(),
                                tr("Connexion réussie : processus publiés") + f" : {count}")

    def save(self):
        settings.save_connections(self.connections)
        self.accept()
