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

GDAL's block cache (``GDAL_CACHEMAX``) is per process: it is bounded here per worker (512 MB
unless set) so that many workers on a large machine do not each take GDAL's default of 5 % of
the memory.
"""

import multiprocessing
import os

wsgi_app = "sentinelle.server:create_app()"
bind = f"{os.environ.get('SENTINELLE_HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("SENTINELLE_WORKERS", max(2, multiprocessing.cpu_count())))
worker_class = "gthread"
threads = int(os.environ.get("SENTINELLE_THREADS", "4"))
timeout = int(os.environ.get("SENTINELLE_TIMEOUT", "300"))  # seconds: synchronous processes
graceful_timeout = 30
keepalive = 5
max_requests = 2000  # recycle workers to bound memory growth
max_requests_jitter = 200
raw_env = [f"GDAL_CACHEMAX={os.environ.get('GDAL_CACHEMAX', '512')}"]  # MB per worker
accesslog = "-"
errorlog = "-"
