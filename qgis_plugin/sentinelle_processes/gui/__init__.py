"""Dialogs (QGIS desktop only): servers, and a territory's layers in one click."""
