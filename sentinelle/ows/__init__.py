"""OGC web services beside the OGC APIs: WMS 1.3.0 (``wms``, ``params``, ``capabilities``),
the layer model they share (``layers``: true colour, indices and derived products per area),
the pixels of derived layers (``derived``) and ISO 19139 / INSPIRE metadata (``metadata``).

Nothing here assembles the web application: :mod:`sentinelle.web` mounts these blueprints.
"""
