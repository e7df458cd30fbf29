<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="fr_FR" sourcelanguage="fr_FR">
  <context>
    <name>SentinelleProcesses</name>
    <message>
      <source>Ajouter</source>
      <translation>Ajouter</translation>
    </message>
    <message>
      <source>Ajouter les couches d'un territoire…</source>
      <translation>Ajouter les couches d'un territoire…</translation>
    </message>
    <message>
      <source>Annulé : la tâche a été arrêtée sur le serveur</source>
      <translation>Annulé : la tâche a été arrêtée sur le serveur</translation>
    </message>
    <message>
      <source>Aucun serveur : ajoutez-en un dans « Serveurs… ».</source>
      <translation>Aucun serveur : ajoutez-en un dans « Serveurs… ».</translation>
    </message>
    <message>
      <source>Aucune</source>
      <translation>Aucune</translation>
    </message>
    <message>
      <source>Authentification</source>
      <translation>Authentification</translation>
    </message>
    <message>
      <source>Ce serveur ne publie aucun territoire.</source>
      <translation>Ce serveur ne publie aucun territoire.</translation>
    </message>
    <message>
      <source>Choisissez un territoire.</source>
      <translation>Choisissez un territoire.</translation>
    </message>
    <message>
      <source>Clé d'API (mot de passe d'une configuration d'authentification)</source>
      <translation>Clé d'API (mot de passe d'une configuration d'authentification)</translation>
    </message>
    <message>
      <source>Configuration</source>
      <translation>Configuration</translation>
    </message>
    <message>
      <source>Configuration d'authentification QGIS (OAuth2/OIDC, Basic…)</source>
      <translation>Configuration d'authentification QGIS (OAuth2/OIDC, Basic…)</translation>
    </message>
    <message>
      <source>Connexion réussie : processus publiés</source>
      <translation>Connexion réussie : processus publiés</translation>
    </message>
    <message>
      <source>Couches ajoutées</source>
      <translation>Couches ajoutées</translation>
    </message>
    <message>
      <source>Couches d'un territoire</source>
      <translation>Couches d'un territoire</translation>
    </message>
    <message>
      <source>En-tête de la clé</source>
      <translation>En-tête de la clé</translation>
    </message>
    <message>
      <source>Enregistrer</source>
      <translation>Enregistrer</translation>
    </message>
    <message>
      <source>Exécution asynchrone : progression suivie, « Annuler » arrête la tâche sur le serveur.</source>
      <translation>Exécution asynchrone : progression suivie, « Annuler » arrête la tâche sur le serveur.</translation>
    </message>
    <message>
      <source>Nom</source>
      <translation>Nom</translation>
    </message>
    <message>
      <source>Nouveau</source>
      <translation>Nouveau</translation>
    </message>
    <message>
      <source>Processus OGC API</source>
      <translation>Processus OGC API</translation>
    </message>
    <message>
      <source>Processus OGC API (Sentinelle)</source>
      <translation>Processus OGC API (Sentinelle)</translation>
    </message>
    <message>
      <source>Recharger les processus</source>
      <translation>Recharger les processus</translation>
    </message>
    <message>
      <source>Serveur</source>
      <translation>Serveur</translation>
    </message>
    <message>
      <source>Serveur indisponible, ses processus ne sont pas chargés</source>
      <translation>Serveur indisponible, ses processus ne sont pas chargés</translation>
    </message>
    <message>
      <source>Serveurs OGC API – Processes</source>
      <translation>Serveurs OGC API – Processes</translation>
    </message>
    <message>
      <source>Serveurs…</source>
      <translation>Serveurs…</translation>
    </message>
    <message>
      <source>Supprimer</source>
      <translation>Supprimer</translation>
    </message>
    <message>
      <source>Territoire</source>
      <translation>Territoire</translation>
    </message>
    <message>
      <source>Tester</source>
      <translation>Tester</translation>
    </message>
    <message>
      <source>couche vectorielle illisible</source>
      <translation>couche vectorielle illisible</translation>
    </message>
    <message>
      <source>processus</source>
      <translation>processus</translation>
    </message>
    <message>
      <source>processus chargés</source>
      <translation>processus chargés</translation>
    </message>
  </context>
</TS>
