"""Sentinelle: Copernicus Sentinel-2 for France's regional spatial data infrastructures.

Packages: ``sentinelle.catalog`` (STAC search, cube loading, masks, composites, sample data),
``sentinelle.analysis`` (pure computations), ``sentinelle.providers`` and
``sentinelle.processes`` (thin pygeoapi adapters), ``sentinelle.web.app`` (the Flask app).
"""

__version__ = "0.1.0"
