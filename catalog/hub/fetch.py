"""Fetching: only the bytes of a COG that cover a box, through GDAL ``/vsicurl/`` range reads,
written as a local COG on the same grid — atomically (``*.part``, then ``os.replace``).

Bytes are counted by GDAL itself: its network statistics (``CPL_VSIL_NETWORK_STATS_ENABLED``,
``VSINetworkStatsGetAsSerializedJSON``, GDAL ≥ 3.2) report the body bytes every ``/vsicurl/``
request downloaded.  rasterio does not wrap them, so they are reached through ``ctypes`` in the
libgdal rasterio already loaded.  When that library cannot be found the counts are ``None`` and
the report says "unknown" rather than guessing.

GDAL 3.10 has no download rate option (libcurl's ``CURLOPT_MAX_RECV_SPEED_LARGE`` is not exposed),
so the bandwidth cap is enforced here: windows are read in strips of COG block rows and the
fetcher sleeps after each strip until the average rate is back under the cap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")

def gdal_options(*, timeout: float, backoff: float) -> dict[str, str]:
    """GDAL options for range reads of remote COGs: GDAL retries transient HTTP errors (429,
    5xx) twice per request; whole-asset retries with backoff are ours (:func:`with_retries`).
    ``timeout`` in seconds per request, ``backoff`` in seconds."""
    return dict(
        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",  # never list the remote "directory"
        GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
        GDAL_HTTP_MULTIPLEX="YES",
        GDAL_HTTP_MAX_RETRY="2",
        GDAL_HTTP_RETRY_DELAY=f"{max(backoff, 0.01):g}",
        GDAL_HTTP_TIMEOUT=f"{max(1, round(timeout))}",
        GDAL_HTTP_CONNECTTIMEOUT=f"{max(1, round(min(timeout, 30)))}",
        VSI_CACHE="FALSE",
    )


# --- GDAL's own byte counters ---------------------------------------------------------------
def _libgdal() -> ctypes.CDLL | None:
    """The libgdal rasterio uses (dlopen of a loaded library returns the same handle).

    Several can be loaded at once — pyogrio and fiona wheels bundle their own — so each
    candidate is probed: the one that sees a config option set through rasterio is it."""
    import rasterio.env

    candidates: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "libgdal" in Path(path).name and path not in candidates:
                    candidates.append(path)
    except OSError:
        pass
    found = ctypes.util.find_library("gdal")
    if found:
        candidates.append(found)
    probe = f"SENTINELLE_HUB_PROBE_{os.getpid()}"
    rasterio.env.set_gdal_config(probe, "rasterio")
    try:
        for path in candidates:
            try:
                lib = ctypes.CDLL(path)
                lib.CPLGetConfigOption.restype = ctypes.c_char_p
                lib.CPLGetConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
                if lib.CPLGetConfigOption(probe.encode(), None) == b"rasterio" and \
                        hasattr(lib, "VSINetworkStatsGetAsSerializedJSON"):
                    return lib
            except OSError:
                continue
    finally:
        rasterio.env.set_gdal_config(probe, None)
    return None


class GdalTraffic:
    """Body bytes GDAL's network layer downloaded since :meth:`enable` (process-wide)."""

    _lock = threading.Lock()
    _lib: ctypes.CDLL | None | bool = False

    @classmethod
    def lib(cls) -> ctypes.CDLL | None:
        with cls._lock:
            if cls._lib is False:
                lib = _libgdal()
                if lib is not None:
                    lib.VSINetworkStatsGetAsSerializedJSON.restype = ctypes.c_void_p
                    lib.VSINetworkStatsGetAsSerializedJSON.argtypes = [ctypes.c_void_p]
                    lib.VSIFree.argtypes = [ctypes.c_void_p]
                    lib.CPLSetConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
                    lib.VSIFOpenL.restype = ctypes.c_void_p
                    lib.VSIFOpenL.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
                    lib.VSIFSeekL.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int]
                    lib.VSIFTellL.restype = ctypes.c_uint64
                    lib.VSIFTellL.argtypes = [ctypes.c_void_p]
                    lib.VSIFCloseL.argtypes = [ctypes.c_void_p]
                cls._lib = lib
            return cls._lib  # type: ignore[return-value]

    @classmethod
    def enable(cls) -> bool:
        lib = cls.lib()
        if lib is None:
            return False
        lib.CPLSetConfigOption(b"CPL_VSIL_NETWORK_STATS_ENABLED", b"YES")
        lib.VSINetworkStatsReset()
        return True

    @classmethod
    def downloaded(cls) -> int | None:
        lib = cls.lib()
        if lib is None:
            return None
        pointer = lib.VSINetworkStatsGetAsSerializedJSON(None)
        if not pointer:
            return 0
        try:
            stats = json.loads(ctypes.string_at(pointer).decode())
        finally:
            lib.VSIFree(pointer)
        return sum(m.get("downloaded_bytes", 0) for m in stats.get("methods", {}).values())

    @classmethod
    def clear_cache(cls) -> None:
        """Forget GDAL's cached remote blocks and file properties (before a retry: a cached
        "not found" or a corrupt block must not be served again)."""
        lib = cls.lib()
        if lib is not None:
            lib.VSICurlClearCache()

    @classmethod
    def file_size(cls, vsi_path: str) -> int | None:
        """Size of a (remote) file as GDAL knows it — cached after the open, no new request."""
        lib = cls.lib()
        if lib is None:
            return None
        handle = lib.VSIFOpenL(vsi_path.encode(), b"rb")
        if not handle:
            return None
        try:
            lib.VSIFSeekL(handle, 0, 2)
            return int(lib.VSIFTellL(handle))
        finally:
            lib.VSIFCloseL(handle)


class RateLimiter:
    """Keeps the average transfer rate under ``rate`` bytes/s by sleeping (``None``: no cap)."""

    def __init__(self, rate: float | None, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.total = 0
        self.slept = 0.0
        self._sleep, self._clock = sleep, clock
        self.start = clock()

    def consume(self, nbytes: int) -> None:
        if not self.rate or nbytes <= 0:
            return
        self.total += nbytes
        ahead = self.total / self.rate - (self._clock() - self.start)
        if ahead > 0:
            self.slept += ahead
            self._sleep(ahead)


def with_retries(action: Callable[[], T], *, retries: int, backoff: float,
                 on_retry: Callable[[int, BaseException], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``action``; on failure wait ``backoff × 2^n`` s (±10 %, at most 5 min) and try again,
    ``retries`` times.  The last error is raised."""
    attempt = 0
    while True:
        try:
            return action()
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as err:  # network, HTTP, corrupt data: all worth another try
            if attempt >= retries:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, err)
            delay = min(300.0, backoff * 2 ** attempt) * random.uniform(0.9, 1.1)
            GdalTraffic.clear_cache()
            sleep(delay)
            attempt += 1


def vsi_path(href: str) -> str:
    """The GDAL path of an href: ``/vsicurl/`` for http(s), ``/vsis3/`` for s3, else as is."""
    scheme = urllib.parse.urlparse(href).scheme
    if scheme in ("http", "https"):
        return f"/vsicurl/{href}"
    if scheme == "s3":
        return "/vsis3/" + href[len("s3://"):]
    if scheme == "file":
        return urllib.parse.urlparse(href).path
    return href


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def multihash(sha256_hex: str) -> str:
    """``file:checksum`` value: a multihash (0x12 = sha2-256, 0x20 = 32 bytes) in hex."""
    return "1220" + sha256_hex


@dataclass(frozen=True)
class Fetched:
    """One local asset file, written and checked."""

    path: Path
    sha256: str
    size: int  # bytes on disk
    transferred: int | None  # body bytes downloaded for it (None: unknown)
    full_size: int | None  # bytes of the whole upstream file
    epsg: int | None
    transform: tuple[float, ...]
    shape: tuple[int, int]
    dtype: str
    nodata: float | None


def _publish(part: Path, path: Path) -> tuple[str, int]:
    """fsync the finished ``*.part``, hash it and rename it into place (atomic on POSIX)."""
    with open(part, "rb") as handle:
        os.fsync(handle.fileno())
    digest = sha256_file(part)
    size = part.stat().st_size
    os.replace(part, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return digest, size


def _check_cog(path: Path) -> None:
    from rio_cogeo.cogeo import cog_validate

    valid, errors, _ = cog_validate(str(path), quiet=True)
    if not valid:
        raise ValueError(f"{path.name} is not a valid COG: {'; '.join(errors)}")


def fetch_window(href: str, path: Path, bounds: tuple[float, float, float, float], *,
                 classes: bool, options: dict[str, str], limiter: RateLimiter,
                 blocksize: int = 512) -> Fetched:
    """Read the pixels of ``href`` inside ``bounds`` (its CRS, on its lattice) and write them as
    a COG at ``path`` with the same CRS, resolution and pixel alignment, with overviews."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.windows import Window, from_bounds
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    source = vsi_path(href)
    before = GdalTraffic.downloaded()
    part = path.with_name(path.name + ".part")
    with rasterio.Env(**options):
        with rasterio.open(source) as src:
            full_size = GdalTraffic.file_size(source) if source.startswith("/vsi") else \
                os.path.getsize(source)
            window = from_bounds(*bounds, transform=src.transform)
            window = window.round_offsets(op="floor").round_lengths(op="ceil")
            window = window.intersection(Window(0, 0, src.width, src.height))
            col, row = int(window.col_off), int(window.row_off)
            width, height = int(window.width), int(window.height)
            if width <= 0 or height <= 0:
                raise ValueError(f"{href} has no pixel inside {bounds}")
            data = np.empty((src.count, height, width), dtype=src.dtypes[0])
            # strips of whole block rows, so that no block is fetched by two strips
            strip = src.block_shapes[0][0] * max(1, 1024 // src.block_shapes[0][0])
            edges = sorted({0, height, *(r - row for r in range(
                (row // strip + 1) * strip, row + height, strip))})
            last = before
            for top, bottom in zip(edges[:-1], edges[1:]):
                rows = bottom - top
                data[:, top:top + rows] = src.read(window=Window(col, row + top, width, rows))
                now = GdalTraffic.downloaded()
                if now is not None and last is not None:
                    limiter.consume(now - last)
                    last = now
            transform = src.window_transform(Window(col, row, width, height))
            profile = dict(driver="GTiff", width=width, height=height, count=src.count,
                           dtype=src.dtypes[0], crs=src.crs, transform=transform,
                           nodata=src.nodata)
            descriptions, scales, offsets = src.descriptions, src.scales, src.offsets
            tags = src.tags()
            colorinterp = src.colorinterp
    after = GdalTraffic.downloaded()
    size = min(blocksize, 256 if max(width, height) <= 1024 else blocksize)
    cog = dict(cog_profiles.get("deflate"), blockxsize=size, blockysize=size,
               predictor=2 if np.dtype(profile["dtype"]).kind in "iu" else 3)
    try:
        with MemoryFile() as memory:
            with memory.open(**profile) as dst:
                dst.write(data)
                for index, text in enumerate(descriptions, start=1):
                    if text:
                        dst.set_band_description(index, text)
                dst.scales, dst.offsets = scales, offsets
                dst.colorinterp = colorinterp
                dst.update_tags(**tags)
            with memory.open() as mem:
                cog_translate(mem, str(part), cog, in_memory=True, quiet=True,
                              overview_resampling="nearest" if classes else "average",
                              use_cog_driver=False)
        _check_cog(part)
        digest, disk = _publish(part, path)
    finally:
        part.unlink(missing_ok=True)
    transferred = None if before is None or after is None else after - before
    epsg = profile["crs"].to_epsg() if profile["crs"] else None
    return Fetched(path, digest, disk, transferred, full_size, epsg, tuple(transform)[:6],
                   (height, width), profile["dtype"], profile["nodata"])


def fetch_whole(href: str, path: Path, *, timeout: float, limiter: RateLimiter,
                expected_sha256: str | None = None) -> Fetched:
    """Download a whole asset (``whole: true``) to ``path`` — streamed, capped, checked."""
    import rasterio

    part = path.with_name(path.name + ".part")
    scheme = urllib.parse.urlparse(href).scheme
    transferred = 0
    try:
        if scheme in ("http", "https"):
            import requests

            with requests.get(href, stream=True, timeout=timeout) as response:
                response.raise_for_status()
                with open(part, "wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        out.write(chunk)
                        transferred += len(chunk)
                        limiter.consume(len(chunk))
                expected = response.headers.get("Content-Length")
                if expected is not None and int(expected) != transferred:
                    raise OSError(f"{href}: got {transferred} bytes of {expected}")
        elif scheme in ("", "file"):
            import shutil

            shutil.copyfile(vsi_path(href), part)
        else:
            raise ValueError(f"whole: true downloads http(s) and local hrefs, not {scheme}://")
        if expected_sha256 and sha256_file(part) != expected_sha256:
            raise ValueError(f"{href}: checksum differs from the upstream file:checksum")
        with rasterio.open(part) as src:  # a readable raster, or an error worth a retry
            src.read(1, out_shape=(1, 1))
            meta = (src.crs.to_epsg() if src.crs else None, tuple(src.transform)[:6],
                    (src.height, src.width), src.dtypes[0], src.nodata)
        digest, disk = _publish(part, path)
    finally:
        part.unlink(missing_ok=True)
    return Fetched(path, digest, disk, transferred if scheme else 0, disk, *meta)



def covering_bytes(path: str, bounds: tuple[float, float, float, float]) -> tuple[int, int]:
    """(bytes, blocks): the compressed full-resolution blocks of a GeoTIFF that a box touches —
    the least any range reader must download for it (headers aside).  ``path`` is anything
    rasterio opens; block sizes come from GDAL's ``TIFF`` metadata domain."""
    import rasterio
    from rasterio.windows import from_bounds

    with rasterio.open(path) as src:
        window = from_bounds(*bounds, transform=src.transform)
        block_h, block_w = src.block_shapes[0]
        col0 = max(0, int(window.col_off // block_w))
        row0 = max(0, int(window.row_off // block_h))
        col1 = min(math.ceil(src.width / block_w),
                   math.ceil((window.col_off + window.width) / block_w))
        row1 = min(math.ceil(src.height / block_h),
                   math.ceil((window.row_off + window.height) / block_h))
        total = 0
        for row in range(row0, row1):
            for col in range(col0, col1):
                size = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1)
                total += int(size or 0)
        return total, max(0, row1 - row0) * max(0, col1 - col0)
