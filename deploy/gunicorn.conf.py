"""gunicorn settings for Sentinelle: ``gunicorn -c deploy/gunicorn.conf.py``.

Threads per worker keep long pixel requests from blocking the catalog and features pages;
each worker process holds its own module-level caches (catalogs, layers, open COGs).

Several worker processes, not only threads: the GIL lets one thread of a process run Python at
a time, and a map tile spends a good share of its time in Python and numpy (parameters, masks,
colours, PNG) besides GDAL (which releases the GIL while it reads and warps).  With one
process, concurrent tiles queue for the GIL; with a worker per core they do not
(``benchmarks/wms.py`` measures both).  Inside a worker, maps are drawn on a few
long-lived reader threads (``SENTINELLE_MAP_THREADS``, default twice the cores, at least 4; see
``sentinelle.catalog.tiles``).

Memory is bounded rather than recycled: GDAL's block cache (``GDAL_CACHEMAX``) is per process
and capped here per worker (256 MB unless set; GDAL's default is 5 % of the memory per process),
and large pixel buffers go back to the OS when freed (``mallopt`` in :func:`post_fork`; glibc's
adaptive mmap threshold otherwise keeps them and RSS creeps up).  Workers are not recycled
(``max_requests = 0``): with threaded workers a recycle resets open keep-alive connections
(benoitc/gunicorn#3038), which ``benchmarks/loadtest.py`` saw as failed requests at 50 clients.
"""

import ctypes
import multiprocessing
import os

wsgi_app = "sentinelle.web.app:create_app()"
bind = f"{os.environ.get('SENTINELLE_HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("SENTINELLE_WORKERS", max(2, multiprocessing.cpu_count())))
worker_class = "gthread"
threads = int(os.environ.get("SENTINELLE_THREADS", "4"))
timeout = int(os.environ.get("SENTINELLE_TIMEOUT", "300"))  # seconds: synchronous processes
graceful_timeout = 30
keepalive = 5
max_requests = 0  # no recycling: it resets keep-alive connections (gunicorn#3038)
raw_env = [f"GDAL_CACHEMAX={os.environ.get('GDAL_CACHEMAX', '256')}"]  # MB per worker
accesslog = "-"
errorlog = "-"


def post_fork(server, worker):
    """Pixel arrays from mmap, returned to the OS when freed (M_MMAP_THRESHOLD = 128 KiB)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)
    except (OSError, AttributeError):  # not glibc
        pass
