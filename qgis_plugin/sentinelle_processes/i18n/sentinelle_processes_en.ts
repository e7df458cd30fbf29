<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="en_GB" sourcelanguage="fr_FR">
  <context>
    <name>SentinelleProcesses</name>
    <message>
      <source>Ajouter</source>
      <translation>Add</translation>
    </message>
    <message>
      <source>Ajouter les couches d'un territoire…</source>
      <translation>Add a territory's layers…</translation>
    </message>
    <message>
      <source>Annulé : la tâche a été arrêtée sur le serveur</source>
      <translation>Canceled: the job was stopped on the server</translation>
    </message>
    <message>
      <source>Aucun serveur : ajoutez-en un dans « Serveurs… ».</source>
      <translation>No server: add one in “Servers…”.</translation>
    </message>
    <message>
      <source>Aucune</source>
      <translation>None</translation>
    </message>
    <message>
      <source>Authentification</source>
      <translation>Authentication</translation>
    </message>
    <message>
      <source>Ce serveur ne publie aucun territoire.</source>
      <translation>This server publishes no territory.</translation>
    </message>
    <message>
      <source>Choisissez un territoire.</source>
      <translation>Choose a territory.</translation>
    </message>
    <message>
      <source>Clé d'API (mot de passe d'une configuration d'authentification)</source>
      <translation>API key (password of an authentication configuration)</translation>
    </message>
    <message>
      <source>Configuration</source>
      <translation>Configuration</translation>
    </message>
    <message>
      <source>Configuration d'authentification QGIS (OAuth2/OIDC, Basic…)</source>
      <translation>QGIS authentication configuration (OAuth2/OIDC, Basic…)</translation>
    </message>
    <message>
      <source>Connexion réussie : processus publiés</source>
      <translation>Connection succeeded: processes published</translation>
    </message>
    <message>
      <source>Couches ajoutées</source>
      <translation>Layers added</translation>
    </message>
    <message>
      <source>Couches d'un territoire</source>
      <translation>A territory's layers</translation>
    </message>
    <message>
      <source>En-tête de la clé</source>
      <translation>Key header</translation>
    </message>
    <message>
      <source>Enregistrer</source>
      <translation>Save</translation>
    </message>
    <message>
      <source>Exécution asynchrone : progression suivie, « Annuler » arrête la tâche sur le serveur.</source>
      <translation>Asynchronous run: progress followed, “Cancel” stops the job on the server.</translation>
    </message>
    <message>
      <source>Nom</source>
      <translation>Name</translation>
    </message>
    <message>
      <source>Nouveau</source>
      <translation>New</translation>
    </message>
    <message>
      <source>Processus OGC API</source>
      <translation>OGC API Processes</translation>
    </message>
    <message>
      <source>Processus OGC API (Sentinelle)</source>
      <translation>OGC API Processes (Sentinelle)</translation>
    </message>
    <message>
      <source>Recharger les processus</source>
      <translation>Reload the processes</translation>
    </message>
    <message>
      <source>Serveur</source>
      <translation>Server</translation>
    </message>
    <message>
      <source>Serveur indisponible, ses processus ne sont pas chargés</source>
      <translation>Server unavailable, its processes are not loaded</translation>
    </message>
    <message>
      <source>Serveurs OGC API – Processes</source>
      <translation>OGC API – Processes servers</translation>
    </message>
    <message>
      <source>Serveurs…</source>
      <translation>Servers…</translation>
    </message>
    <message>
      <source>Supprimer</source>
      <translation>Remove</translation>
    </message>
    <message>
      <source>Territoire</source>
      <translation>Territory</translation>
    </message>
    <message>
      <source>Tester</source>
      <translation>Test</translation>
    </message>
    <message>
      <source>couche vectorielle illisible</source>
      <translation>unreadable vector layer</translation>
    </message>
    <message>
      <source>processus</source>
      <translation>process</translation>
    </message>
    <message>
      <source>processus chargés</source>
      <translation>processes loaded</translation>
    </message>
  </context>
</TS>
