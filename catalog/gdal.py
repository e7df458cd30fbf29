"""GDAL settings for reading COGs, chosen per source and passed explicitly to the reader.

Remote COGs: never list directories (``EMPTY_DIR``), merge range requests, retry transient
HTTP errors.  Local files: allow directory reads, because some real catalogs keep their
georeferencing in ``.aux.xml`` sidecars (Earth Search extracts in ``../shared``).
"""

from __future__ import annotations

import stackstac

_REMOTE = dict(
    GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
    CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.TIF,.tiff,.jp2,.JP2",
    GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
    GDAL_HTTP_MULTIPLEX="YES",
    GDAL_HTTP_MAX_RETRY="4",
    GDAL_HTTP_RETRY_DELAY="1",
    GDAL_HTTP_TIMEOUT="60",
)


def reader_env(*, remote: bool) -> stackstac.rio_env.LayeredEnv:
    """stackstac's layered GDAL environment for local or remote assets."""
    if remote:
        return stackstac.DEFAULT_GDAL_ENV.updated(always=_REMOTE)
    return stackstac.DEFAULT_GDAL_ENV.updated(open=dict(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"))
