"""gunicorn settings for Sentinelle: ``gunicorn -c deploy/gunicorn.conf.py``.

Threads per worker keep long pixel requests from blocking the catalog and features pages;
each worker process holds its own module-level caches (catalogs, layers).
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
accesslog = "-"
errorlog = "-"
