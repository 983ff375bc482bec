"""A loopback ERP: an HTTP server on 127.0.0.1 that takes pushed journal entries the way an ERP
must (``posting.push``): it checks each body's signature, applies each entry once per
``Idempotency-Key`` and answers a repeat as the first. ``einvoice bench post`` measures the push
connector against it; the fault drills give it faults to inject, each request drawing one:

- ``fail``: answers 503 before applying anything;
- ``slow``: applies, then answers only after ``slow_seconds`` (longer than the engine waits);
- ``drop``: applies, then closes the connection without answering;
- ``twice``: applies and writes its answer twice on the connection;
- ``stall``: applies, then holds the request until ``release()`` (a drill kills the worker
  that sent it meanwhile), then closes without answering. Only the first ``stall`` requests.
"""

from __future__ import annotations

import random
import socket
import socketserver
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from einvoice.posting.push import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature


@dataclass
class Faults:
    """Probabilities of each fault per request (the rest are answered at once), and how many of
    the first requests to stall."""

    fail: float = 0.0
    slow: float = 0.0
    drop: float = 0.0
    twice: float = 0.0
    stall: int = 0
    slow_seconds: float = 3.0
    seed: int | None = None


@dataclass
class Ledger:
    """What the ERP received and applied."""

    applied: Counter[str] = field(default_factory=Counter)  # Idempotency-Key -> times applied (must be 1)
    deliveries: Counter[str] = field(default_factory=Counter)  # Idempotency-Key -> requests received
    faults: Counter[str] = field(default_factory=Counter)
    stalled: list[str] = field(default_factory=list)  # the keys of the requests held
    bad_signatures: int = 0


_OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"applied":true}'
_UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"
_UNAUTHORISED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\nbad signature"


class LoopbackErp:
    """The server, on a free port of 127.0.0.1 (``url``), until ``close()``."""

    def __init__(self, secret: bytes, faults: Faults | None = None) -> None:
        self.secret = secret
        self.faults = faults or Faults()
        self.ledger = Ledger()
        self.stalled = threading.Event()  # set when a request is being held
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._stalls_left = self.faults.stall
        erp = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                erp._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/journal-entries"
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-erp", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    # --- one connection ------------------------------------------------------------------------

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                if not self._answer(connection, headers, body):
                    return
        except OSError:
            return

    def _draw(self) -> str:
        with self._lock:
            if self._stalls_left > 0:
                self._stalls_left -= 1
                return "stall"
            roll = self._random.random()
        for fault in ("fail", "slow", "drop", "twice"):
            chance: float = getattr(self.faults, fault)
            if roll < chance:
                return fault
            roll -= chance
        return "ok"

    def _answer(self, connection: socket.socket, headers: dict[str, str], body: bytes) -> bool:
        """Answer one request; False when the connection is closed after it."""
        key = headers.get(IDEMPOTENCY_HEADER.lower(), "")
        if not verify_signature(self.secret, body, headers.get(SIGNATURE_HEADER.lower())):
            with self._lock:
                self.ledger.bad_signatures += 1
            connection.sendall(_UNAUTHORISED)
            return True
        fault = self._draw()
        with self._lock:
            self.ledger.deliveries[key] += 1
            self.ledger.faults[fault] += 1
            if fault != "fail" and key not in self.ledger.applied:
                self.ledger.applied[key] += 1  # applied once per key, whatever comes after
        if fault == "fail":
            connection.sendall(_UNAVAILABLE)
            return False
        if fault == "stall":
            with self._lock:
                self.ledger.stalled.append(key)
            self.stalled.set()
            self._release.wait()
            return False
        if fault == "drop":
            return False
        if fault == "slow":
            time.sleep(self.faults.slow_seconds)
        connection.sendall(_OK + (_OK if fault == "twice" else b""))
        return fault != "twice"
