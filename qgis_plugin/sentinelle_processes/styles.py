"""Styles for raster results: the product's legend when the file or the server gives one.

* a GeoTIFF with a colour table (classes) → a paletted style whose labels are the class names
  the file carries (GDAL metadata ``class_<code>``, as Sentinelle's classification and change
  rasters do);
* a style linked by the server for the output (``links`` with ``rel`` ``style``/``legend``/
  ``describedby`` and a QML or SLD type in the output's description) → that style.

The style is saved as ``<file>.qml`` beside the raster: QGIS applies it whenever the file is
opened, in this project or another."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

STYLE_TYPES = ("application/vnd.qgis.qml", "application/vnd.ogc.sld+xml", "application/sld+xml")


def apply_raster_style(path: str, output, fetch=None, feedback=None) -> str | None:
    """Write ``<path>.qml`` from a style the server links for ``output`` (``fetch(href)``
    reads it) or the raster's classes; ``None`` when there is no legend."""
    layer = QgsRasterLayer(path, Path(path).stem, "gdal")
    if not layer.isValid():
        return None
    qml = str(Path(path).with_suffix(".qml"))
    for link in getattr(output, "links", []) or []:
        kind = str(link.get("type", "")).split(";")[0].strip().lower()
        if kind in STYLE_TYPES and link.get("href") and fetch is not None:
            try:
                body = fetch(link["href"]).body
            except Exception as err:  # a missing style is no reason to fail the run
                if feedback is not None:
                    feedback.pushWarning(f"style {link['href']}: {err}")
                continue
            if kind == "application/vnd.qgis.qml":
                Path(qml).write_bytes(body)
            else:
                sld = str(Path(path).with_suffix(".sld"))
                Path(sld).write_bytes(body)
                layer.loadSldStyle(sld)
                layer.saveNamedStyle(qml)
            return _done(qml, feedback)
    classes = _classes(path)
    table = layer.dataProvider().colorTable(1)
    if table:
        data = QgsPalettedRasterRenderer.colorTableToClassData(table)
        for item in data:
            if int(item.value) in classes:
                item.label = classes[int(item.value)]
        data = [item for item in data if item.color.alpha() > 0 or int(item.value) in classes]
        layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, data))
        layer.saveNamedStyle(qml)
        return _done(qml, feedback)
    return None


def _done(qml: str, feedback) -> str:
    if feedback is not None:
        feedback.pushInfo(f"style: {qml}")
    return qml


def _classes(path: str) -> dict[int, str]:
    """``{code: name}`` from GDAL metadata ``class_<code>`` (dataset or band 1)."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    if dataset is None:
        return {}
    found = {}
    for metadata in (dataset.GetMetadata() or {}, dataset.GetRasterBand(1).GetMetadata() or {}):
        for key, value in metadata.items():
            if key.lower().startswith("class_") and key[6:].lstrip("-").isdigit():
                found[int(key[6:])] = value
    return found
