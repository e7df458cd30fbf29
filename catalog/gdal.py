"""Reading COGs safely: GDAL settings chosen per source, bounded HTTP waits, and read errors
turned into :mod:`sentinelle.errors` that name the file and the scene.

Remote COGs: never list directories (``EMPTY_DIR``), merge range requests, and never wait
forever — each HTTP request gives up after ``SENTINELLE_HTTP_TIMEOUT`` seconds (30; connecting
after at most 10) and is retried ``SENTINELLE_HTTP_RETRIES`` times (2) on timeouts and
429/5xx, so a dead or slow host costs at most about (retries + 1) × timeout + 3 s.  Local
files: allow directory reads, because some real catalogs keep their georeferencing in
``.aux.xml`` sidecars (Earth Search extracts in ``../shared``).

Errors: stackstac reports any GDAL failure as a bare ``RuntimeError`` raised inside a Dask
task.  :class:`CheckedReader` (the reader every cube uses) and :func:`asset_errors` (for code
that opens COGs with rasterio itself, e.g. a fast tile path) turn them into
:class:`AssetUnreadable` (502: missing, truncated or corrupt file), :class:`UpstreamTimeout`
(504) or :class:`UpstreamUnavailable` (503), through :func:`read_error`.
:func:`check_assets` opens the files' headers before anything is computed (results cached),
so that a composite can leave out a scene whose file is missing or not a GeoTIFF.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import rasterio
import stackstac
from stackstac.rio_reader import AutoParallelRioReader

from sentinelle.errors import (
    AssetUnreadable,
    SourceUnavailable,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from sentinelle.settings import data_dir

DEFAULT_HTTP_TIMEOUT = 30.0  # s
DEFAULT_HTTP_RETRIES = 2

_REMOTE = dict(
    GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
    CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.TIF,.tiff,.jp2,.JP2",
    GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
    GDAL_HTTP_MULTIPLEX="YES",
    GDAL_HTTP_RETRY_DELAY="1",
)


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value.strip() else default
    except ValueError:
        return default


def http_timeout() -> float:
    """Seconds one HTTP request to an upstream (COG host, STAC API) may take
    (``SENTINELLE_HTTP_TIMEOUT``, 30)."""
    return max(0.1, _float_env("SENTINELLE_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT))


def http_retries() -> int:
    """Retries of a failed or timed-out COG request (``SENTINELLE_HTTP_RETRIES``, 2)."""
    return max(0, int(_float_env("SENTINELLE_HTTP_RETRIES", DEFAULT_HTTP_RETRIES)))


def reader_env(*, remote: bool) -> stackstac.rio_env.LayeredEnv:
    """stackstac's layered GDAL environment for local or remote assets."""
    if remote:
        timeout = http_timeout()
        return stackstac.DEFAULT_GDAL_ENV.updated(always=dict(
            _REMOTE,
            GDAL_HTTP_TIMEOUT=str(max(1, round(timeout))),
            GDAL_HTTP_CONNECTTIMEOUT=str(max(1, round(min(timeout, 10.0)))),
            GDAL_HTTP_MAX_RETRY=str(http_retries()),
        ))
    return stackstac.DEFAULT_GDAL_ENV.updated(open=dict(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"))


def is_remote(href: str) -> bool:
    return urllib.parse.urlparse(href).scheme not in ("", "file")


# --- which scene and band a file belongs to (for messages) -----------------------------------

_NAMES: "collections.OrderedDict[str, tuple[str, str]]" = collections.OrderedDict()
_NAMES_LOCK = threading.Lock()
_NAMES_MAX = 50_000


def register_asset(href: str, scene: str, band: str) -> None:
    """Remember that ``href`` is ``band`` of ``scene``, so that a read error deep inside a
    Dask task can name them (bounded, most recent kept)."""
    with _NAMES_LOCK:
        _NAMES[href] = (scene, band)
        _NAMES.move_to_end(href)
        while len(_NAMES) > _NAMES_MAX:
            _NAMES.popitem(last=False)


def _names(href: str) -> tuple[str | None, str | None]:
    with _NAMES_LOCK:
        return _NAMES.get(href, (None, None))


# --- errors -----------------------------------------------------------------------------------

_HTTP_CODE = re.compile(r"HTTP (?:response )?code:? *(\d{3})", re.IGNORECASE)
_TIMEOUT = re.compile(r"timed? ?out|timeout was reached", re.IGNORECASE)
_REFUSED = re.compile(r"connection refused|couldn't connect|could not connect|failed to connect"
                      r"|could not resolve|couldn't resolve", re.IGNORECASE)
_MISSING = re.compile(r"no such file|does not exist", re.IGNORECASE)
_FORMAT = re.compile(r"not recognized as (?:being in )?a supported file format", re.IGNORECASE)


def _messages(err: BaseException) -> list[str]:
    """The messages of ``err`` and of the errors it was raised from, outermost first
    (stackstac wraps rasterio's error, which chains GDAL's own, most precise, messages)."""
    out: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(out) < 10:
        seen.add(id(current))
        if not isinstance(current, RuntimeError) or current.__cause__ is None:
            out.append(str(current))
        current = current.__cause__ or current.__context__
    return out or [str(err)]


def _unwrap(href: str) -> str:
    """The href without ``vrt://…?ovr=k`` / ``/vsicurl/`` wrapping."""
    text = href[len("vrt://"):].split("?", 1)[0] if href.startswith("vrt://") else href
    return text[len("/vsicurl/"):] if text.startswith("/vsicurl/") else text


def _display(href: str) -> str:
    """The href for a message: a local file inside the data folder relative to it (messages
    must not show the server's directory layout)."""
    text = _unwrap(href)
    if not is_remote(text):
        try:
            return str(Path(text.removeprefix("file://")).resolve().relative_to(data_dir()))
        except ValueError:
            return text
    return text


def read_error(err: BaseException, href: str, *, scene: str | None = None,
               band: str | None = None) -> SourceUnavailable:
    """The Sentinelle error for a failure to open or read ``href``."""
    if isinstance(err, SourceUnavailable):
        return err
    messages = _messages(err)
    text = " / ".join(messages)
    if scene is None:
        scene, band = _names(_unwrap(href))
    href = _display(href)
    where = f"{href}" + (f", scene {scene}" if scene else "") + (f", band {band}" if band else "")
    detail = dict(href=href, scene=scene, band=band)
    code = _HTTP_CODE.search(text)
    status = int(code.group(1)) if code else None
    if _TIMEOUT.search(text):
        return UpstreamTimeout(
            f"upstream asset timed out: {where}: no answer within {http_timeout():g} s "
            f"(SENTINELLE_HTTP_TIMEOUT) after {http_retries()} retries; try again later")
    if status is not None and status >= 500 or status == 429:
        return SourceUnavailable(
            f"upstream asset unavailable: {where}: the server answered HTTP {status}; "
            "try again later")
    if _REFUSED.search(text):
        return UpstreamUnavailable(
            f"upstream asset unavailable: {where}: the server cannot be reached "
            f"({messages[-1]}); try again later")
    if status in (403, 404, 410) or _MISSING.search(text):
        reason = f"HTTP {status}" if status else "no such file"
        return AssetUnreadable(
            f"upstream asset missing: {where} ({reason}); the catalog points to a file that "
            "does not exist — choose other dates or ask the catalog's operator", **detail)
    if _FORMAT.search(text):
        return AssetUnreadable(
            f"upstream asset unreadable: {where}: not a readable GeoTIFF (corrupt file); "
            "choose other dates or ask the catalog's operator to replace it", **detail)
    return AssetUnreadable(
        f"upstream asset unreadable: {where}: {messages[-1]} (truncated or corrupt file); "
        "choose other dates or ask the catalog's operator to replace it", **detail)


@contextlib.contextmanager
def asset_errors(href: str, *, scene: str | None = None,
                 band: str | None = None) -> Iterator[None]:
    """Turn GDAL / rasterio errors raised in the block into :func:`read_error`'s errors::

        with asset_errors(asset.href, scene=scene.id, band="red"):
            with rasterio.open(asset.href) as ds:
                block = ds.read(1, window=window)
    """
    try:
        yield
    except SourceUnavailable:
        raise
    except (rasterio.errors.RasterioError, OSError, RuntimeError) as err:
        raise read_error(err, href, scene=scene, band=band) from err


class CheckedReader(AutoParallelRioReader):
    """stackstac's reader, raising :func:`read_error`'s errors instead of ``RuntimeError``."""

    def _open(self):
        try:
            return super()._open()
        except RuntimeError as err:
            raise read_error(err, self.url) from err

    def read(self, window, **kwargs):
        try:
            return super().read(window, **kwargs)
        except RuntimeError as err:
            raise read_error(err, self.url) from err


# --- header checks before reading --------------------------------------------------------------

@dataclass(frozen=True)
class Header:
    """What a file's header says: enough to read it without trusting the catalog."""

    dtype: str
    nodata: float | None
    epsg: int | None
    transform: tuple[float, ...]
    shape: tuple[int, int]
    count: int


_CHECKS: dict[tuple, tuple[float, SourceUnavailable | None]] = {}
_HEADERS: dict[tuple, Header] = {}
_CHECKS_LOCK = threading.Lock()
_REMOTE_OK_TTL = 600.0  # s a remote file known readable is not re-checked
_REMOTE_MISSING_TTL = 60.0  # s a remote file known missing is not re-checked


def _check_key(href: str) -> tuple:
    if is_remote(href):
        return (href,)
    path = href[len("file://"):] if href.startswith("file://") else href
    try:
        stat = os.stat(path)
    except OSError:
        return (href, None)
    return (href, stat.st_mtime_ns, stat.st_size)


def check_asset(href: str, *, scene: str | None = None,
                band: str | None = None) -> SourceUnavailable | None:
    """``None`` when the file's header opens, else the error reading it would raise.

    Results are cached: local files until they change, remote files for 10 minutes (1 minute
    for a missing one); timeouts and server errors are not cached.
    """
    key = _check_key(href)
    with _CHECKS_LOCK:
        cached = _CHECKS.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    remote = is_remote(href)
    env = reader_env(remote=remote)
    try:
        with env.open:
            with rasterio.open(href) as ds:
                header = Header(ds.dtypes[0], ds.nodata, ds.crs.to_epsg() if ds.crs else None,
                                tuple(ds.transform)[:6], (ds.height, ds.width), ds.count)
        error = None
    except Exception as err:  # noqa: BLE001 - classified below
        error = read_error(err, href, scene=scene, band=band)
    if not remote:
        ttl = float("inf")
    elif error is None:
        ttl = _REMOTE_OK_TTL
    elif isinstance(error, AssetUnreadable):
        ttl = _REMOTE_MISSING_TTL
    else:
        ttl = 0.0
    if ttl > 0:
        with _CHECKS_LOCK:
            if len(_CHECKS) > _NAMES_MAX:
                _CHECKS.clear()
                _HEADERS.clear()
            _CHECKS[key] = (time.monotonic() + ttl, error)
            if error is None:
                _HEADERS[key] = header
    return error


def asset_header(href: str) -> Header:
    """The header of ``href`` (its data type, nodata, grid), read once and cached with
    :func:`check_asset`'s result; :func:`read_error`'s error when it does not open."""
    key = _check_key(href)
    with _CHECKS_LOCK:
        header = _HEADERS.get(key)
    if header is not None:
        return header
    error = check_asset(href)
    if error is not None:
        raise error
    with _CHECKS_LOCK:
        header = _HEADERS.get(key)
    if header is None:  # not cacheable (a remote file checked with a zero TTL): read it
        with reader_env(remote=is_remote(href)).open, rasterio.open(href) as ds:
            header = Header(ds.dtypes[0], ds.nodata, ds.crs.to_epsg() if ds.crs else None,
                            tuple(ds.transform)[:6], (ds.height, ds.width), ds.count)
    return header


def check_assets(assets: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str],
                                                                  SourceUnavailable]:
    """``{(scene, band): error}`` for the ``(href, scene, band)`` whose header does not open.

    Remote files are checked in parallel (8 at a time).
    """
    assets = list(assets)
    remote = [a for a in assets if is_remote(a[0])]
    out: dict[tuple[str, str], SourceUnavailable] = {}

    def one(asset: tuple[str, str, str]) -> None:
        href, scene, band = asset
        error = check_asset(href, scene=scene, band=band)
        if error is not None:
            out[(scene, band)] = error

    if len(remote) > 1:
        with ThreadPoolExecutor(min(8, len(remote)), thread_name_prefix="sentinelle-check") \
                as pool:
            list(pool.map(one, remote))
    else:
        for asset in remote:
            one(asset)
    for asset in assets:
        if not is_remote(asset[0]):
            one(asset)
    return out
