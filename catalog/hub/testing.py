"""A real HTTP file server for tests and benchmarks: Range requests, byte counting, faults.

Python's ``http.server`` ignores ``Range``; a COG mirror must be tested against a server that
honours it, and the bytes a mirror costs are best counted where they leave — on the server.
:class:`RangeServer` serves a folder on loopback (one thread per connection), answers ``HEAD``,
single ``bytes=a-b`` / ``a-`` / ``-n`` ranges with 206, and counts, per path, the requests and
the bytes of the bodies and headers it sent.  Faults are injected per path pattern to exercise
a client's retries: HTTP errors, stalls (timeouts), corrupt bodies, or refusing everything after
N requests (an upstream that dies mid-sync).

    with RangeServer(folder) as server:
        url = server.url + "/item/B04.tif"
        ...
        server.bytes_sent(suffix=".tif")
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Fault:
    """What to do to requests whose path matches ``pattern`` (fnmatch, e.g. ``*/B04.tif``).

    ``kind``: ``"status"`` (answer ``status``), ``"stall"`` (sleep ``seconds`` before
    answering), ``"corrupt"`` (send bytes with every other byte flipped — a damaged COG).
    ``times``: how many matching requests are hit (``None``: all of them).
    """

    pattern: str
    kind: str = "status"
    status: int = 500
    seconds: float = 5.0
    times: int | None = None
    hits: int = 0


@dataclass
class Counters:
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    body_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    header_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests read counters instead
        pass

    def send_header(self, keyword, value):
        self._header_bytes += len(f"{keyword}: {value}\r\n")
        super().send_header(keyword, value)

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self._header_bytes = len(f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n") + 2
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def do_HEAD(self):  # noqa: N802
        self._serve(body=False)

    def do_GET(self):  # noqa: N802
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        srv = self.server
        path = unquote(urlparse(self.path).path)
        fault = srv.take_fault(path)
        with srv.lock:
            srv.counters.requests[path] += 1
            total_requests = sum(srv.counters.requests.values())
        if srv.fail_after is not None and total_requests > srv.fail_after:
            fault = Fault(path, "status", 503)
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            self._start(fault.status, {"Content-Length": "0", "Connection": "close"})
            self._count(path, 0)
            self.close_connection = True
            return
        file = (srv.root / path.lstrip("/")).resolve()
        if srv.root not in file.parents or not file.is_file():
            self._start(404, {"Content-Length": "0"})
            self._count(path, 0)
            return
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        header = self.headers.get("Range")
        if header:
            match = _RANGE.match(header.strip())
            if match is None:  # multi-range and other forms: not needed by GDAL's /vsicurl/
                self._start(416, {"Content-Length": "0", "Content-Range": f"bytes */{size}"})
                self._count(path, 0)
                return
            first, last = match.groups()
            if first == "":
                start, end = max(0, size - int(last)), size - 1
            else:
                start, end = int(first), min(size - 1, int(last)) if last else size - 1
            if start >= size or start > end:
                self._start(416, {"Content-Length": "0", "Content-Range": f"bytes */{size}"})
                self._count(path, 0)
                return
            status = 206
        length = end - start + 1
        headers = {"Content-Type": "image/tiff" if file.suffix in (".tif", ".tiff")
                   else "application/json", "Content-Length": str(length),
                   "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._start(status, headers)
        sent = 0
        if body:
            with file.open("rb") as handle:
                handle.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = handle.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    if fault is not None and fault.kind == "corrupt":
                        chunk = bytes(b ^ 0xFF if i % 2 else b for i, b in enumerate(chunk))
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    sent += len(chunk)
                    remaining -= len(chunk)
                    if srv.rate:
                        time.sleep(len(chunk) / srv.rate)
        self._count(path, sent)

    def _count(self, path: str, body_bytes: int) -> None:
        with self.server.lock:
            self.server.counters.body_bytes[path] += body_bytes
            self.server.counters.header_bytes[path] += self._header_bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, root: Path, rate: float | None):
        super().__init__(address, _Handler)
        self.root = root
        self.rate = rate
        self.lock = threading.Lock()
        self.counters = Counters()
        self.faults: list[Fault] = []
        self.fail_after: int | None = None

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fnmatch.fnmatch(path, fault.pattern) and (fault.times is None
                                                              or fault.hits < fault.times):
                    fault.hits += 1
                    return fault
        return None


class RangeServer:
    """Serve ``root`` on ``127.0.0.1`` (a free port) in a background thread.

    ``rate``: bytes per second per connection (slows the server down, e.g. to kill a client
    mid-transfer).  Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, root: str | Path, *, port: int = 0, rate: float | None = None):
        self._server = _Server(("127.0.0.1", port), Path(root).resolve(), rate)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> RangeServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- faults and counters -------------------------------------------------------------
    def add_fault(self, pattern: str, kind: str = "status", **options) -> Fault:
        fault = Fault(pattern, kind, **options)
        with self._server.lock:
            self._server.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._server.lock:
            self._server.faults.clear()
            self._server.fail_after = None

    def fail_after(self, requests: int | None) -> None:
        """Answer 503 to every request after the next ``requests`` ones (``None``: stop)."""
        with self._server.lock:
            done = sum(self._server.counters.requests.values())
            self._server.fail_after = None if requests is None else done + requests

    def set_rate(self, rate: float | None) -> None:
        """Bytes per second per connection from now on (``None``: full speed)."""
        self._server.rate = rate

    def reset_counters(self) -> None:
        with self._server.lock:
            self._server.counters = Counters()

    def requests(self, pattern: str = "*") -> int:
        with self._server.lock:
            return sum(n for p, n in self._server.counters.requests.items()
                       if fnmatch.fnmatch(p, pattern))

    def bytes_sent(self, pattern: str = "*", *, headers: bool = True) -> int:
        """Bytes sent for paths matching ``pattern``: bodies, plus status lines and headers."""
        with self._server.lock:
            counters = self._server.counters
            total = sum(n for p, n in counters.body_bytes.items() if fnmatch.fnmatch(p, pattern))
            if headers:
                total += sum(n for p, n in counters.header_bytes.items()
                             if fnmatch.fnmatch(p, pattern))
            return total

    def paths(self) -> dict[str, int]:
        """Path → body bytes sent."""
        with self._server.lock:
            return dict(self._server.counters.body_bytes)


# --- an upstream to mirror: COGs over HTTP + a STAC API (rustac serve) -----------------------
def rustac_executable() -> str | None:
    """``rustac`` from the running interpreter's scripts folder first (venv not activated)."""
    import os
    import shutil
    import sys

    return shutil.which("rustac", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def publish_items(catalog: str | Path, folder: str | Path, base_url: str, *,
                  keep=lambda item: True, file_size: bool = True) -> list[dict]:
    """Copy the COGs of a static catalog's items (those ``keep(item_dict)`` accepts) into
    ``folder/<item id>/`` and return the items with absolute ``base_url`` hrefs, ``file:size``
    on each asset and no links — as a STAC API would publish them."""
    import shutil

    import pystac

    folder = Path(folder)
    root = pystac.Catalog.from_file(str(Path(catalog) / "catalog.json")
                                    if Path(catalog).is_dir() else str(catalog))
    items = []
    for item in root.get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        data = item.to_dict(include_self_link=False)
        if not keep(data):
            continue
        (folder / item.id).mkdir(parents=True, exist_ok=True)
        for asset in data["assets"].values():
            source = Path(asset["href"])
            if not source.exists():
                continue
            target = folder / item.id / source.name
            if not target.exists():
                shutil.copyfile(source, target)
            asset["href"] = f"{base_url}/{item.id}/{source.name}"
            if file_size:
                asset["file:size"] = target.stat().st_size
        data["links"] = []
        items.append(data)
    return items


class StacApi:
    """``rustac serve`` on loopback over one collection and its items (a real STAC API).

    rustac's quirks: the collection JSON must carry no item links and the items come in a
    separate FeatureCollection; pystac-client POSTs ``/search`` (GET with bbox fails)."""

    def __init__(self, collection: dict, items: list[dict], workdir: str | Path):
        import json

        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        collection = dict(collection, links=[])
        (self.workdir / "collection.json").write_text(json.dumps(collection))
        (self.workdir / "items.json").write_text(
            json.dumps({"type": "FeatureCollection", "features": items}))
        self.process = None
        self.url = ""

    def start(self, timeout: float = 30) -> StacApi:
        import socket
        import subprocess
        import urllib.request

        rustac = rustac_executable()
        if rustac is None:
            raise RuntimeError("rustac is not installed (pip install rustac)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [rustac, "serve", "--addr", f"127.0.0.1:{port}",
             str(self.workdir / "collection.json"), str(self.workdir / "items.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/collections", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("rustac serve did not answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
            self.process = None

    def __enter__(self) -> StacApi:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
