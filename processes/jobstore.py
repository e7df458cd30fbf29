"""Job records: TinyDB (embedded default) or PostgreSQL (production).

A record is a flat dict with pygeoapi's job fields — ``type``, ``identifier``, ``process_id``,
``created``, ``started``, ``finished``, ``updated`` (RFC 3339 strings, UTC), ``status``,
``location`` (result file), ``mimetype``, ``message``, ``progress`` (0–100) — plus three of
ours: ``owner`` (``host:pid`` of the server process that runs the job, so that a restarted
server can tell orphans from its siblings' jobs), ``http_status`` (of a failed job's error) and
``principal`` (who submitted it when access control is on: ``key:<id>`` or
``oidc:<issuer>|<sub>``, never a secret; ``NULL`` for anonymous jobs).  Reads can be limited to
one principal (:data:`ANY` = no limit), so that a caller only ever sees their own jobs.

A store that cannot be reached raises :class:`JobStoreUnavailable` (HTTP 503) within a bounded
time (``SENTINELLE_JOBS_DB_TIMEOUT``, 5 s: connection, each statement, waiting for the
connection's lock), and then fails fast for 5 s (``retry_after``, the ``Retry-After`` clients
get) instead of queueing every request behind a dead database.

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
        http_status integer,                -- ours
        principal   text                    -- ours
    );

The first twelve columns are those of pygeoapi's own ``PostgreSQLManager`` table, so an
existing pygeoapi ``jobs`` table is reused (the extra columns are added to it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from pygeoapi.process.base import JobNotFoundError
from pygeoapi.util import DATETIME_FORMAT

from sentinelle.errors import SentinelleError

COLUMNS = ("type", "identifier", "process_id", "created", "started", "finished", "updated",
           "status", "location", "mimetype", "message", "progress", "owner", "http_status",
           "principal")
TIMES = ("created", "started", "finished", "updated")
ACTIVE = ("accepted", "running")
#: default bound (seconds) on reaching the job database (``SENTINELLE_JOBS_DB_TIMEOUT``)
DEFAULT_TIMEOUT = 5.0
#: seconds a store that just failed answers "unavailable" at once before trying again
DEFAULT_RETRY = 5.0


class _Any:
    def __repr__(self):
        return "ANY"


#: ``principal=ANY``: every job, whoever submitted it (server bookkeeping, access off)
ANY = _Any()


class JobStoreUnavailable(SentinelleError, OSError):
    """The job database cannot be reached: 503, with the seconds to wait (``Retry-After``)."""

    http_status = 503
    ogc_code = "NoApplicableCode"

    def __init__(self, detail: str, retry_after: int = 5):
        self.retry_after = max(1, int(retry_after))
        self.detail = detail
        super().__init__(
            f"La base des traitements est injoignable ; réessayez dans {self.retry_after} s. "
            f"/ The job database cannot be reached ({detail}); retry in {self.retry_after} s.")


def _matches(job: dict, principal: Any) -> bool:
    return principal is ANY or job.get("principal") == principal


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

    def get(self, job_id: str, *, principal: Any = ANY) -> dict:
        """The record (only if ``principal`` submitted it); raises pygeoapi's
        ``JobNotFoundError`` — the same for another principal's job as for none."""
        raise NotImplementedError

    def list(self, *, status: Iterable[str] | None = None,
             process_ids: Iterable[str] | None = None, limit: int | None = None,
             offset: int = 0, principal: Any = ANY) -> tuple[list[dict], int]:
        """(records newest first, number matched), of ``principal`` only unless ``ANY``."""
        raise NotImplementedError

    def delete(self, job_id: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --- TinyDB ------------------------------------------------------------------------------

class _AtomicJSONStorage:
    """TinyDB storage that replaces the file in one step (temporary file + rename): a server
    killed while writing leaves the previous version, never a file cut or with a longer
    version's tail (TinyDB's own storage rewrites the file in place).  A file damaged that
    way by an older version is read up to the end of its JSON document."""

    def __init__(self, path: str | Path, **_ignored):
        self.path = Path(path)

    def read(self):
        import json

        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            try:
                data, end = json.JSONDecoder().raw_decode(text)
            except json.JSONDecodeError as err:
                raise JobStoreUnavailable(f"{self.path} is not valid JSON ({err}); restore "
                                          "it or move it away") from err
            import logging

            logging.getLogger(__name__).warning(
                "%s: %d characters after the JSON document ignored (a write was "
                "interrupted); the next write repairs the file", self.path, len(text) - end)
            return data

    def write(self, data) -> None:
        import json

        temporary = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, self.path)

    def close(self) -> None:
        pass


class TinyDBJobStore(JobStore):
    """One JSON file, locked per operation (several server processes may share it),
    replaced atomically on every write."""

    def __init__(self, path: str | Path, *, timeout: float = 60.0):
        self.path = Path(path)
        self.timeout = float(timeout)
        self._thread_lock = threading.RLock()

    @contextlib.contextmanager
    def _db(self):
        import tinydb
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._thread_lock, FileLock(f"{self.path}.lock", timeout=self.timeout):
                with tinydb.TinyDB(self.path, storage=_AtomicJSONStorage) as db:
                    yield db
        except Timeout as err:
            raise JobStoreUnavailable(f"{self.path} stayed locked for {self.timeout:.0f} s",
                                      retry_after=5) from err

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

    def get(self, job_id, *, principal=ANY) -> dict:
        import tinydb

        with self._db() as db:
            found = db.search(tinydb.where("identifier") == job_id)
        if not found:
            raise JobNotFoundError()
        job = {**{c: None for c in COLUMNS}, **found[0]}
        if not _matches(job, principal):
            raise JobNotFoundError()
        return job

    def list(self, *, status=None, process_ids=None, limit=None, offset=0, principal=ANY):
        with self._db() as db:
            jobs = [{**{c: None for c in COLUMNS}, **j} for j in db.all()]
        jobs = [j for j in jobs if _matches(j, principal)]
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
    it breaks (a database restart does not take the server down).

    Every call is bounded by ``timeout`` seconds: to get the connection's lock, to connect
    (``connect_timeout``), and per statement — a watchdog shuts the socket down when the
    server stops answering mid-statement (a hung or partitioned database never hangs a
    request thread).  After a failure, calls fail at once for ``retry_after`` seconds."""

    def __init__(self, url: str, table: str = "jobs", *, timeout: float | None = None,
                 retry_after: float | None = None):
        if not table.replace("_", "").isalnum():
            raise ValueError(f"job table name must be alphanumeric, got {table!r}")
        self.url = url
        self.table = table
        if timeout is None:
            timeout = float(os.environ.get("SENTINELLE_JOBS_DB_TIMEOUT") or DEFAULT_TIMEOUT)
        self.timeout = max(2.0, float(timeout))  # libpq's connect_timeout floor
        self.retry_after = max(1.0, float(DEFAULT_RETRY if retry_after is None
                                          else retry_after))
        self._lock = threading.RLock()
        self._conn = None
        self._down_until = 0.0
        self._down_reason = ""

    def _connect(self):
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True,
                               connect_timeout=max(2, round(self.timeout)))
        try:
            with self._deadline(conn) as fired:
                self._create(conn)
        except BaseException as err:
            with contextlib.suppress(Exception):
                conn.close()
            if fired:
                raise psycopg.errors.ConnectionTimeout("no answer") from err
            raise
        return conn

    def _create(self, conn) -> None:
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
        conn.execute(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS principal text")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_status_idx ON {t} (status)")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_principal_idx ON {t} (principal)")

    @contextlib.contextmanager
    def _deadline(self, conn):
        """Shut the connection's socket down if the block lasts more than ``timeout``: the
        blocked read then fails with ``OperationalError`` instead of waiting forever.
        Yields a list that holds ``True`` once the watchdog fired."""
        guard = threading.Lock()
        done, fired = [False], []

        def cut():
            with guard:
                if done[0]:
                    return
                fired.append(True)
                with contextlib.suppress(OSError, ValueError):
                    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.timeout, cut)
        timer.daemon = True
        timer.start()
        try:
            yield fired
        finally:
            with guard:
                done[0] = True
            timer.cancel()

    def _unavailable(self, detail: str) -> JobStoreUnavailable:
        return JobStoreUnavailable(detail, retry_after=round(self.retry_after))

    def _execute(self, sql: str, params: Sequence[Any] = ()):
        import psycopg

        if time.monotonic() < self._down_until:
            raise self._unavailable(self._down_reason)
        if not self._lock.acquire(timeout=self.timeout):
            raise self._unavailable(f"no answer within {self.timeout:.0f} s")
        try:
            if time.monotonic() < self._down_until:  # it failed while we waited
                raise self._unavailable(self._down_reason)
            for attempt in (1, 2):
                fresh = self._conn is None or self._conn.closed
                fired: list = []
                try:
                    if fresh:
                        self._conn = self._connect()
                    with self._deadline(self._conn) as fired:
                        cursor = self._conn.execute(sql, params)
                        rows = cursor.fetchall() if cursor.description else None
                    return rows, cursor.rowcount
                except psycopg.OperationalError as err:
                    if self._conn is not None:
                        with contextlib.suppress(Exception):
                            self._conn.close()
                    self._conn = None
                    # a connection that broke while idle (database restarted) gets one more
                    # try on a new one; a failed connection or a timeout does not
                    if fresh or fired or attempt == 2:
                        timed_out = fired or isinstance(err, psycopg.errors.ConnectionTimeout)
                        reason = (f"no answer within {self.timeout:.0f} s" if timed_out
                                  else (str(err).strip().splitlines() or [type(err).__name__])[0])
                        self._down_reason = reason
                        self._down_until = time.monotonic() + self.retry_after
                        raise self._unavailable(reason) from err
        finally:
            self._lock.release()

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

    def get(self, job_id, *, principal=ANY):
        rows, _ = self._execute(
            f"SELECT {', '.join(COLUMNS)} FROM {self.table} WHERE identifier = %s", [job_id])
        if not rows:
            raise JobNotFoundError()
        job = self._from_db(rows[0])
        if not _matches(job, principal):
            raise JobNotFoundError()
        return job

    def list(self, *, status=None, process_ids=None, limit=None, offset=0, principal=ANY):
        where, params = [], []
        if principal is not ANY:
            if principal is None:
                where.append("principal IS NULL")
            else:
                where.append("principal = %s")
                params.append(principal)
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


__all__ = ["ACTIVE", "ANY", "COLUMNS", "JobStore", "JobStoreUnavailable", "PostgresJobStore",
           "TinyDBJobStore", "now", "open_store"]
