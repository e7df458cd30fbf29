"""One QGIS Processing algorithm per process of a server, built from its description.

The parameters come one to one from :mod:`.ogc.schema`; this module only converts between
QGIS values (extents, layers, dates, CRS) and plain ones, runs the job through
:mod:`.ogc.jobs` with QGIS's progress bar and cancel, and writes each output where QGIS wants
it: GeoTIFF → raster (styled from the file's colour table and class names, or a style the
server links), GeoJSON → vector, CSV → table (joined to the input zones when they came from a
layer), JSON → the log and a file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsMemoryProviderUtils,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, QVariant

from . import styles
from .network import client_for
from .ogc import jobs
from .ogc.client import Canceled, ServerError
from .ogc.connections import Connection
from .ogc.i18n import text
from .ogc.results import Payload, column_type, payloads, read_csv, summary
from .ogc.schema import AlgorithmSpec, InputError, Param
from .translate import tr

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
ICON = str(Path(__file__).with_name("icon.svg"))



class ProcessAlgorithm(QgsProcessingAlgorithm):
    """The algorithm of process ``spec.process_id`` on ``connection``."""

    def __init__(self, connection: Connection, spec: AlgorithmSpec, lang: str = "fr"):
        super().__init__()
        self.connection = connection
        self.spec = spec
        self.lang = lang
        self._zones: dict[str, dict] = {}

    # --- identity ----------------------------------------------------------------------------
    def createInstance(self):
        return ProcessAlgorithm(self.connection, self.spec, self.lang)

    def name(self) -> str:
        return "".join(c if c.isalnum() else "_" for c in
                       f"{self.connection.slug}__{self.spec.process_id}".lower())

    def displayName(self) -> str:
        return self.spec.title

    def group(self) -> str:
        return self.connection.name

    def groupId(self) -> str:
        return self.connection.slug

    def tags(self):
        return [self.spec.process_id, *self.spec.keywords, "OGC API Processes"]

    def icon(self):
        from qgis.PyQt.QtGui import QIcon

        return QIcon(ICON)

    def shortHelpString(self) -> str:
        lines = [self.spec.description, "",
                 f"{tr('Serveur')} : {self.connection.url} — "
                 f"{tr('processus')} {self.spec.process_id} {self.spec.version}".strip()]
        if self.spec.asynchronous:
            lines.append(tr("Exécution asynchrone : progression suivie, « Annuler » arrête la "
                            "tâche sur le serveur."))
        for spec in self.spec.inputs:
            lines.append(f"<b>{spec.title}</b> ({spec.input_id}) : {spec.description}")
        return "<br>".join(line for line in lines if line is not None)

    def flags(self):
        return super().flags() | QgsProcessingAlgorithm.FlagCanCancel

    # --- parameters --------------------------------------------------------------------------
    def initAlgorithm(self, config=None):
        for param in self.spec.params:
            definition = self._parameter(param)
            if param.help and hasattr(definition, "setHelp"):
                definition.setHelp(param.help)
            self.addParameter(definition)
        several = len(self.spec.outputs) > 1
        for output in self.spec.outputs:
            optional = several and output is not self.spec.outputs[0]
            if output.kind == "raster":
                dest = QgsProcessingParameterRasterDestination(output.name, output.title,
                                                               None, optional, True)
            elif output.kind == "vector":
                dest = QgsProcessingParameterVectorDestination(
                    output.name, output.title, QgsProcessing.TypeVectorAnyGeometry, None,
                    optional, True)
            else:
                label = output.extension.upper()
                dest = QgsProcessingParameterFileDestination(
                    output.name, output.title, f"{label} (*.{output.extension})", None,
                    optional, True)
            if output.description and hasattr(dest, "setHelp"):
                dest.setHelp(output.description)
            self.addParameter(dest)
            self.addOutput(QgsProcessingOutputFile(f"{output.name}_file",
                                                   text("file", self.lang, title=output.title)))
            if output.kind in ("vector", "table"):
                self.addOutput(QgsProcessingOutputVectorLayer(
                    f"{output.name}_joined", text("joined", self.lang, title=output.title)))

    def _parameter(self, p: Param):
        optional = p.optional
        if p.kind == "extent":
            return QgsProcessingParameterExtent(p.name, p.title, None, optional)
        if p.kind == "layer":
            return QgsProcessingParameterFeatureSource(
                p.name, p.title, [QgsProcessing.TypeVectorAnyGeometry], None, optional)
        if p.kind == "field":
            return QgsProcessingParameterField(p.name, p.title, None, p.parent,
                                               QgsProcessingParameterField.Any, False, True)
        if p.kind == "enum" or (p.kind == "boolean" and p.default is None):
            options = p.options if p.kind == "enum" else ["true", "false"]
            default = p.default
            if p.multiple and default is not None and not isinstance(default, list):
                default = [default]
            if default is not None:
                default = [str(d) for d in default] if p.multiple else str(default)
            definition = QgsProcessingParameterEnum(p.name, p.title, options, p.multiple,
                                                    default, optional)
            definition.setUsesStaticStrings(True)
            return definition
        if p.kind in ("number", "integer"):
            kind = QgsProcessingParameterNumber.Integer if p.kind == "integer" \
                else QgsProcessingParameterNumber.Double
            minimum = p.minimum if p.minimum is not None else -1.7976931348623157e308
            maximum = p.maximum if p.maximum is not None else 1.7976931348623157e308
            return QgsProcessingParameterNumber(p.name, p.title, kind, p.default, optional,
                                                minimum, maximum)
        if p.kind == "boolean":
            return QgsProcessingParameterBoolean(p.name, p.title, bool(p.default), optional)
        if p.kind in ("date", "datetime"):
            kind = QgsProcessingParameterDateTime.Date if p.kind == "date" \
                else QgsProcessingParameterDateTime.DateTime
            return QgsProcessingParameterDateTime(p.name, p.title, kind, p.default, optional)
        if p.kind == "crs":
            return QgsProcessingParameterCrs(p.name, p.title, p.default, optional)
        return QgsProcessingParameterString(p.name, p.title, p.default, p.kind == "json",
                                            optional)

    # --- values ------------------------------------------------------------------------------
    def _values(self, parameters, context) -> dict:
        values = {}
        self._zones = {}
        params = {p.name: p for p in self.spec.params}
        for p in self.spec.params:
            raw = parameters.get(p.name)
            if raw is None or raw == "" or raw == []:
                values[p.name] = None
                continue
            if p.kind == "extent":
                rect = self.parameterAsExtent(parameters, p.name, context, WGS84)
                values[p.name] = None if rect.isNull() else \
                    [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()]
            elif p.kind == "layer":
                id_field = next((q for q in params.values()
                                 if q.kind == "field" and q.parent == p.name), None)
                field_name = parameters.get(id_field.name) if id_field else None
                source = self.parameterAsSource(parameters, p.name, context)
                if source is None:
                    raise QgsProcessingException(self.invalidSourceError(parameters, p.name))
                layer = self.parameterAsVectorLayer(parameters, p.name, context)
                keys = set(layer.primaryKeyAttributes()) if layer is not None else set()
                values[p.name] = self._layer_value(p, source, field_name, context, keys)
            elif p.kind == "field":
                values[p.name] = raw if isinstance(raw, str) else (raw[0] if raw else None)
            elif p.kind == "enum":
                values[p.name] = self.parameterAsEnumStrings(parameters, p.name, context) \
                    if p.multiple else self.parameterAsEnumString(parameters, p.name, context)
            elif p.kind == "boolean":
                values[p.name] = (self.parameterAsEnumString(parameters, p.name, context)
                                  == "true") if p.default is None \
                    else self.parameterAsBoolean(parameters, p.name, context)
            elif p.kind == "number":
                values[p.name] = self.parameterAsDouble(parameters, p.name, context)
            elif p.kind == "integer":
                values[p.name] = self.parameterAsInt(parameters, p.name, context)
            elif p.kind in ("date", "datetime"):
                values[p.name] = _iso(raw, p.kind)
            elif p.kind == "crs":
                crs = self.parameterAsCrs(parameters, p.name, context)
                values[p.name] = crs.authid() if crs.isValid() else None
            else:
                values[p.name] = self.parameterAsString(parameters, p.name, context) or None
        return values

    def _layer_value(self, param: Param, source, field_name, context, keys=()) -> dict:
        """The layer as a CRS84 FeatureCollection (ids from ``field_name`` or QGIS ids) and,
        when the input wants one geometry, its union; kept for the join of a CSV result.
        Primary-key attributes (a GeoPackage ``fid``: the storage's row id, not data) are
        left out of the properties unless they are the chosen identifier."""
        transform = QgsCoordinateTransform(source.sourceCrs(), WGS84,
                                           context.transformContext())
        features, geometries, rows = [], [], {}
        names = [name for index, name in enumerate(source.fields().names())
                 if index not in keys or name == field_name]
        for feature in source.getFeatures():
            geometry = QgsGeometry(feature.geometry())
            if not geometry.isNull():
                geometry.transform(transform)
                geometries.append(geometry)
            attributes = {name: _plain(feature[name]) for name in names}
            zone_id = attributes.get(field_name) if field_name else feature.id()
            features.append({"type": "Feature", "id": zone_id, "properties": attributes,
                             "geometry": None if geometry.isNull()
                             else json.loads(geometry.asJson(12))})
            rows[str(zone_id)] = (QgsGeometry(feature.geometry()), feature.attributes())
        collection = {"type": "FeatureCollection", "features": features}
        value = {"features": collection, "geometry": None}
        if param.geometry in ("geometry", "feature") and geometries:
            value["geometry"] = json.loads(QgsGeometry.unaryUnion(geometries).asJson(12))
        self._zones[param.name] = {"fields": source.fields(), "crs": source.sourceCrs(),
                                   "wkb": source.wkbType(), "rows": rows}
        return value

    # --- running -----------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        values = self._values(parameters, context)
        try:
            inputs = self.spec.encode(values, self.lang)
        except InputError as err:
            raise QgsProcessingException(str(err)) from err
        wanted = [o.output_id for o in self.spec.outputs if parameters.get(o.name) not in
                  (None, "")]
        client = client_for(self.connection, self.lang, feedback)
        self._fetch = client.fetch
        feedback.pushInfo(f"POST {self.connection.url}/processes/{self.spec.process_id}"
                          f"/execution")
        feedback.pushDebugInfo(json.dumps(inputs, ensure_ascii=False)[:2000])

        def progress(percent: float, message: str) -> None:
            if percent >= 0:
                feedback.setProgress(percent)
            feedback.pushInfo(message)

        try:
            run = jobs.execute(client, self.spec.process_id, inputs,
                               outputs=self.spec.output_request(wanted),
                               asynchronous=self.spec.asynchronous, progress=progress,
                               canceled=feedback.isCanceled, log=feedback.pushInfo)
            received = payloads(run.response, self.spec.outputs, wanted, fetch=client.fetch)
        except Canceled as err:
            feedback.pushInfo(tr("Annulé : la tâche a été arrêtée sur le serveur") + f" ({err})")
            return {}
        except ServerError as err:
            feedback.reportError(err.message, True)
            raise QgsProcessingException(err.message) from err
        feedback.setProgress(100)
        results = {}
        for output in self.spec.outputs:
            payload = received.get(output.output_id)
            if payload is not None:
                results.update(self._write(output, payload, parameters, context, feedback))
        return results

    def _write(self, output, payload: Payload, parameters, context, feedback) -> dict:
        """Save ``payload`` where the destination parameter says; the file as received is
        always kept beside it (``<name>_file``)."""
        if output.kind in ("raster", "vector"):
            dest = self.parameterAsOutputLayer(parameters, output.name, context)
        else:
            dest = self.parameterAsFileOutput(parameters, output.name, context)
        stem, ext = os.path.splitext(dest)
        raw = dest if ext.lower().lstrip(".") == payload.extension or (
            payload.kind == "raster" and ext.lower() in (".tif", ".tiff")) \
            else f"{stem}.{payload.extension}"
        Path(raw).parent.mkdir(parents=True, exist_ok=True)
        Path(raw).write_bytes(payload.content)
        results = {f"{output.name}_file": raw}
        feedback.pushInfo(f"{output.title}: {payload.media_type} → {raw}")
        if payload.kind == "raster" and output.kind == "raster":
            if raw != dest:
                from osgeo import gdal

                gdal.Translate(dest, raw)
            styles.apply_raster_style(dest, output, self._fetch, feedback)
            results[output.name] = dest
        elif payload.kind == "vector" and output.kind == "vector":
            if raw != dest:
                _convert_vector(raw, dest, context)
            results[output.name] = dest
        elif payload.kind == "table":
            joined = self._join_table(payload, output, dest if output.kind == "vector"
                                      else f"{stem}_zones.gpkg", context)
            if joined:
                results[f"{output.name}_joined"] = joined
                if output.kind == "vector":
                    results[output.name] = joined
        elif payload.kind == "json":
            feedback.pushInfo(summary(payload))
            if output.kind in ("json", "file"):
                results[output.name] = raw
        else:
            if raw != dest and output.kind not in ("raster", "vector"):
                shutil.copyfile(raw, dest)
                raw = dest
            if output.kind not in ("raster", "vector"):
                results[output.name] = raw
        if output.kind in ("json", "file", "table") and output.name not in results:
            results[output.name] = raw
        return results

    def _join_table(self, payload: Payload, output, dest: str, context) -> str | None:
        """The CSV rows as a layer: joined to the zones (by the ``id`` column, the ids the
        zones were sent with) when they came from a layer, else a table without geometry."""
        header, rows = read_csv(payload.content)
        zones = next(iter(self._zones.values()), None) if len(self._zones) == 1 else None
        fields = QgsFields()
        zone_names = []
        if zones is not None and "id" in header:
            for field in zones["fields"]:
                fields.append(QgsField(field))
                zone_names.append(field.name())
        added = [name for name in header if name not in zone_names]
        for name in added:
            kind = column_type([row.get(name, "") for row in rows])
            fields.append(QgsField(name, {"integer": QVariant.LongLong,
                                          "number": QVariant.Double}.get(kind, QVariant.String)))
        wkb = zones["wkb"] if zone_names else QgsWkbTypes.NoGeometry
        crs = zones["crs"] if zone_names else QgsCoordinateReferenceSystem()
        layer = QgsMemoryProviderUtils.createMemoryLayer(output.name, fields, wkb, crs)
        features = []
        for row in rows:
            feature = QgsFeature(fields)
            attributes = [None] * len(zone_names)
            if zone_names:
                geometry, attributes = zones["rows"].get(str(row.get("id")), (None, attributes))
                attributes = list(attributes)
                if geometry is not None:
                    feature.setGeometry(geometry)
            for name in added:
                kind = fields.field(name).type()
                attributes.append(_typed(row.get(name), kind))
            feature.setAttributes(attributes)
            features.append(feature)
        layer.dataProvider().addFeatures(features)
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = QgsVectorFileWriter.driverForExtension(
            os.path.splitext(dest)[1]) or "GPKG"
        error = QgsVectorFileWriter.writeAsVectorFormatV3(layer, dest,
                                                          context.transformContext(), options)
        if error[0] != QgsVectorFileWriter.NoError:
            raise QgsProcessingException(f"{dest}: {error[1]}")
        return dest


def _convert_vector(source: str, dest: str, context) -> None:
    layer = QgsVectorLayer(source, "result", "ogr")
    if not layer.isValid():
        raise QgsProcessingException(f"{source}: " + tr("couche vectorielle illisible"))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = QgsVectorFileWriter.driverForExtension(
        os.path.splitext(dest)[1]) or "GPKG"
    error = QgsVectorFileWriter.writeAsVectorFormatV3(layer, dest, context.transformContext(),
                                                      options)
    if error[0] != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"{dest}: {error[1]}")


def _typed(value, kind):
    if value in (None, ""):
        return None
    try:
        if kind == QVariant.LongLong:
            return int(value)
        if kind == QVariant.Double:
            return float(value)
    except ValueError:
        return value
    return value


def _plain(value):
    """A QGIS attribute value as JSON (NULL → None, dates → ISO 8601)."""
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    if isinstance(value, QDateTime):
        return value.toString("yyyy-MM-ddTHH:mm:ss")
    if isinstance(value, QDate):
        return value.toString("yyyy-MM-dd")
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _iso(value, kind: str) -> str | None:
    """A date parameter's value as ISO 8601 (``2024-05-17``; ``…T10:00:00Z`` for
    date-times)."""
    if isinstance(value, QDateTime):
        if not value.isValid():
            return None
        return value.date().toString("yyyy-MM-dd") if kind == "date" \
            else value.toUTC().toString("yyyy-MM-ddTHH:mm:ss") + "Z"
    if isinstance(value, QDate):
        return value.toString("yyyy-MM-dd") if value.isValid() else None
    text = str(value).strip()
    return text[:10] if kind == "date" and len(text) >= 10 else text or None
