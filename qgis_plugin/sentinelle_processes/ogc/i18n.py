"""The few words the pure parts show to users, French first with English.

The QGIS-side texts (menus, dialogs) go through Qt's translations (``i18n/*.ts``); these ones
are built outside Qt (parameter labels derived from a server's schemas, error messages), so
they carry their own two-language table, chosen by the same QGIS locale."""

from __future__ import annotations

TEXTS = {
    "layer": {"fr": "{title} — couche", "en": "{title} — layer"},
    "extent": {"fr": "{title} — emprise", "en": "{title} — extent"},
    "collection": {"fr": "{title} — collection du serveur", "en": "{title} — server collection"},
    "filter": {"fr": "{title} — filtre CQL2 sur la collection",
               "en": "{title} — CQL2 filter on the collection"},
    "feature_id": {"fr": "{title} — identifiant de l'entité de la collection",
                   "en": "{title} — feature identifier in the collection"},
    "id_field": {"fr": "{title} — champ identifiant des entités (sinon l'identifiant QGIS)",
                 "en": "{title} — feature identifier field (else the QGIS feature id)"},
    "start": {"fr": "{title} — début (ou date)", "en": "{title} — start (or date)"},
    "end": {"fr": "{title} — fin (vide : la date seule)", "en": "{title} — end (empty: the date "
            "alone)"},
    "list": {"fr": "{title} (valeurs séparées par des virgules)",
             "en": "{title} (comma-separated values)"},
    "json": {"fr": "{title} (JSON)", "en": "{title} (JSON)"},
    "file": {"fr": "{title} — fichier tel que reçu", "en": "{title} — file as received"},
    "joined": {"fr": "{title} — zones jointes", "en": "{title} — joined zones"},
    "collections_help": {"fr": "Collections servies : {items}",
                         "en": "Served collections: {items}"},
    "one_of": {"fr": "Donnez une seule de ces formes : {forms}.",
               "en": "Give only one of these forms: {forms}."},
    "missing": {"fr": "« {title} » est obligatoire : donnez {forms}.",
                "en": "“{title}” is required: give {forms}."},
    "or": {"fr": " ou ", "en": " or "},
    "too_small": {"fr": "« {title} » doit être {op} {bound} (reçu : {value}).",
                  "en": "“{title}” must be {op} {bound} (got {value})."},
    "too_large": {"fr": "« {title} » doit être {op} {bound} (reçu : {value}).",
                  "en": "“{title}” must be {op} {bound} (got {value})."},
    "not_number": {"fr": "« {title} » : « {value} » n'est pas un nombre.",
                   "en": "“{title}”: “{value}” is not a number."},
    "bad_json": {"fr": "« {title} » n'est pas du JSON valide ({error}).",
                 "en": "“{title}” is not valid JSON ({error})."},
    "empty_layer": {"fr": "« {title} » : la couche n'a aucune entité.",
                    "en": "“{title}”: the layer has no feature."},
    "end_without_start": {"fr": "« {title} » : donnez le début de la période.",
                          "en": "“{title}”: give the start of the period."},
    "needs_collection": {"fr": "« {title} » : choisissez aussi la collection.",
                         "en": "“{title}”: choose the collection too."},
}


def text(key: str, lang: str = "fr", **values) -> str:
    """The text ``key`` in ``lang`` (French when the language is not known)."""
    entry = TEXTS[key]
    return entry.get(lang, entry["fr"]).format(**values)


def language(locale: str | None) -> str:
    """``fr`` or ``en`` from a locale name (``fr_FR``, ``en-US``, ``de``…): French for a
    French locale, English (the more widely read) for any other."""
    return "fr" if (locale or "").lower().startswith("fr") else "en"
