"""The parts of the plugin that need no QGIS: an OGC API – Processes client, the mapping from
JSON schemas to processing parameters, job polling and result decoding.

Pure Python (standard library only) so that they are unit-tested with any Python, inside or
outside QGIS; the QGIS side only converts QGIS values to plain ones and back."""
