"""The Copernicus hub: a local mirror of an upstream STAC API over areas of interest.

``sentinelle hub sync CONFIG`` searches the upstream API (pystac-client), keeps the scenes clear
enough over each area (cloud fraction from SCL, read remotely by ranges), fetches only the COG
bytes covering the areas (GDAL ``/vsicurl/`` range reads), writes clipped COGs on the native grid
and a static STAC catalog that :func:`sentinelle.catalog.open_catalog` reads — incrementally,
resumably, with retries, a bandwidth cap and a report of the bytes it cost and saved.

    from sentinelle.catalog.hub import load_config, sync

    report = sync(load_config("hub-guyane.yml"), progress=True)
    print(report.format())
"""

from sentinelle.catalog.hub.config import HubConfig, load_config, parse_config
from sentinelle.catalog.hub.report import SyncReport
from sentinelle.catalog.hub.sync import sync

__all__ = ["HubConfig", "SyncReport", "load_config", "parse_config", "sync"]
