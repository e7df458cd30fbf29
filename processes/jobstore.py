"""Job records: TinyDB (embedded default) or PostgreSQL (production).

A record is a flat dict with pygeoapi's job fields — ``type``, ``identifier``, ``process_id``,
``created``, ``started``, ``finished``, ``updated`` (RFC 3339 strings, UTC), ``status``,
``location`` (result file), ``mimetype``, ``message``, ``progress`` (0–100) — plus two of
ours: ``owner`` (``host:pid`` of the server process that runs the job, so that a restarted
server can tell orphans from its siblings' jobs) and ``http_status`` (of a failed job's error).

PostgreSQL: ``SENTINELLE_JOBS_DB=postgresql://user:password@host:5432/db`` (libpq URL).  The
table (``SENTINELLE_JOBS_TABLE``, default ``jobs``) is created when missing::

    CREATE TABLE jobs (
        type        text NOT NULL DEFAULT 'process',
        identifier  text PRIMARY KEY,
        process_id  text NOT NULL,
        created     timestamptz, started timestamptz, finished timestamptz,
        updated     timestamptz,
        status      text NOT NULL,          -- accepted running successful failed dismissed
        location    text, mimetype text, message text,
        progress    integer NOT NULL DEFAULT 0,
        owner       text,                   -- ours
        http_status integer                 -- ours
    );

The first twelve columns are those of pygeoapi's own ``PostgreSQLManager`` table, so an
existing pygeoapi ``jobs`` table is reused (the two extra columns are added to it).
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from pygeoapi.process.base import JobNotFoundError
from pygeoapi.util import DATETIME_FORMAT

COLUMNS = ("type", "identifier", "process_id", "created", "started", "finished", "updated",
           "status", "location", "mimetype", "message", "progress", "owner", "http_status")
TIMES = ("created", "started", "finished", "updated")
ACTIVE = ("accepted", "running")


def now() -> str:
    """The current time as pygeoapi writes it (UTC, microseconds, ``Z``)."""
    return datetime.now(timezone.utc).strftime(DATETIME_FORMAT)


class JobStore:
    """Where job records live; every method is safe to call from any thread."""

    def add(self, job: dict) -> None:
        raise NotImplementedError

    def update(self, job_id: str, fields: dict, *,
               only_if_status: Sequence[str] | None = None) -> bool:
        """Update a record (only while its status is one of ``only_if_status``, if given);
        ``True`` when a record was changed."""
        raise NotImplementedError

    def get(self, job_id: str) -> dict:
        """The record; raises pygeoapi's ``JobNotFoundError``."""
        raise NotImplementedError

    def list(self, *, status: Iterable[str] | None = None,
             process_ids: Iterable[str] | None = None, limit: int | None = None,
             offset: int = 0) -> tuple[list[dict], int]:
        """(records newest first, number matched)."""
        raise NotImplementedError

    def delete(self, job_id: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --- TinyDB ------------------------------------------------------------------------------

class TinyDBJobStore(JobStore):
    """One JSON file, locked per operation (several server processes may share it)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._thread_lock = threading.RLock()

    @contextlib.contextmanager
    def _db(self):
        import tinydb
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, FileLock(f"{self.path}.lock", timeout=60):
            with tinydb.TinyDB(self.path) as db:
                yield db

    def add(self, job: dict) -> None:
        with self._db() as db:
            db.insert(dict(job))

    def update(self, job_id, fields, *, only_if_status=None) -> bool:
        import tinydb

        query = tinydb.where("identifier") == job_id
        if only_if_status is not None:
            query &= tinydb.where("status").one_of(list(only_if_status))
        with self._db() as db:
            return bool(db.update(dict(fields), query))

    def get(self, job_id) -> dict:
        import tinydb

        with self._db() as db:
            found = db.search(tinydb.where("identifier") == job_id)
        if not found:
            raise JobNotFoundError()
        return {**{c: None for c in COLUMNS}, **found[0]}

    def list(self, *, status=None, process_ids=None, limit=None, offset=0):
        with self._db() as db:
            jobs = [{**{c: None for c in COLUMNS}, **j} for j in db.all()]
        if status:
            wanted = set(status)
            jobs = [j for j in jobs if j["status"] in wanted]
        if process_ids:
            wanted = set(process_ids)
            jobs = [j for j in jobs if j["process_id"] in wanted]
        jobs.sort(key=lambda j: j.get("created") or "", reverse=True)
        end = None if limit is None else offset + limit
        return jobs[offset:end], len(jobs)

    def delete(self, job_id) -> bool:
        import tinydb

        with self._db() as db:
            return bool(db.remove(tinydb.where("identifier") == job_id))

    def __repr__(self):
        return f"<TinyDBJobStore {self.path}>"


# --- PostgreSQL ----------------------------------------------------------------------------

class PostgresJobStore(JobStore):
    """psycopg 3, one autocommit connection per store guarded by a lock, reconnected when
    it breaks (a database restart does not take the server down)."""

    def __init__(self, url: str, table: str = "jobs"):
        if not table.replace("_", "").isalnum():
            raise ValueError(f"job table name must be alphanumeric, got {table!r}")
        self.url = url
        self.table = table
        self._lock = threading.RLock()
        self._conn = None

    def _connect(self):
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        conn.execute("SET TIME ZONE 'UTC'")
        t = self.table
        conn.execute(f"""
            CREATE TABLE IF NOT EXISTS {t} (
                type text NOT NULL DEFAULT 'process',
                identifier text PRIMARY KEY,
                process_id text NOT NULL,
                created timestamptz, started timestamptz, finished timestamptz,
                updated timestamptz,
                status text NOT NULL,
                location text, mimetype text, message text,
                progress integer NOT NULL DEFAULT 0)""")
        conn.execute(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS owner text")
        conn.execute(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS http_status integer")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_status_idx ON {t} (status)")
        return conn

    def _execute(self, sql: str, params: Sequence[Any] = ()):
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    cursor = self._conn.execute(sql, params)
                    rows = cursor.fetchall() if cursor.description else None
                    return rows, cursor.rowcount
                except psycopg.OperationalError:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise

    @staticmethod
    def _to_db(fields: dict) -> dict:
        out = {}
        for key, value in fields.items():
            if key not in COLUMNS:
                continue
            if key in TIMES and isinstance(value, str) and value:
                value = datetime.strptime(value, DATETIME_FORMAT).replace(tzinfo=timezone.utc)
            out[key] = value
        return out

    @staticmethod
    def _from_db(row: Sequence[Any]) -> dict:
        job = dict(zip(COLUMNS, row))
        for key in TIMES:
            if isinstance(job[key], datetime):
                value = job[key]
                if value.tzinfo is None:
                    value = value.replace(tzinfo=timezone.utc)
                job[key] = value.astimezone(timezone.utc).strftime(DATETIME_FORMAT)
        return job

    def add(self, job):
        fields = self._to_db(job)
        names = ", ".join(fields)
        marks = ", ".join(["%s"] * len(fields))
        self._execute(f"INSERT INTO {self.table} ({names}) VALUES ({marks})",
                      list(fields.values()))

    def update(self, job_id, fields, *, only_if_status=None) -> bool:
        fields = self._to_db(fields)
        if not fields:
            return False
        sets = ", ".join(f"{k} = %s" for k in fields)
        sql = f"UPDATE {self.table} SET {sets} WHERE identifier = %s"
        params = [*fields.values(), job_id]
        if only_if_status is not None:
            sql += " AND status = ANY(%s)"
            params.append(list(only_if_status))
        _, count = self._execute(sql, params)
        return count > 0

    def get(self, job_id):
        rows, _ = self._execute(
            f"SELECT {', '.join(COLUMNS)} FROM {self.table} WHERE identifier = %s", [job_id])
        if not rows:
            raise JobNotFoundError()
        return self._from_db(rows[0])

    def list(self, *, status=None, process_ids=None, limit=None, offset=0):
        where, params = [], []
        if status:
            where.append("status = ANY(%s)")
            params.append(list(status))
        if process_ids:
            where.append("process_id = ANY(%s)")
            params.append(list(process_ids))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows, _ = self._execute(f"SELECT count(*) FROM {self.table}{clause}", params)
        matched = int(rows[0][0])
        sql = (f"SELECT {', '.join(COLUMNS)} FROM {self.table}{clause} "
               "ORDER BY created DESC NULLS LAST OFFSET %s")
        page_params = [*params, int(offset or 0)]
        if limit is not None:
            sql += " LIMIT %s"
            page_params.append(int(limit))
        rows, _ = self._execute(sql, page_params)
        return [self._from_db(r) for r in rows], matched

    def delete(self, job_id) -> bool:
        _, count = self._execute(f"DELETE FROM {self.table} WHERE identifier = %s", [job_id])
        return count > 0

    def close(self):
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None

    def __repr__(self):
        safe = self.url.split("@")[-1]
        return f"<PostgresJobStore {safe} table={self.table}>"


def open_store(connection: str | Path, *, table: str = "jobs") -> JobStore:
    """A PostgreSQL store for ``postgresql://…`` / ``postgres://…`` URLs, else a TinyDB file."""
    text = str(connection)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresJobStore(text, table)
    return TinyDBJobStore(text)


__all__ = ["ACTIVE", "COLUMNS", "JobStore", "PostgresJobStore", "TinyDBJobStore", "now",
           "open_store"]
