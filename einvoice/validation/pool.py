"""Validation of documents from outside in subprocesses, each held to a time and a memory limit.

Why: saxonche holds Python's interpreter lock for as long as a transformation runs, and the
official stylesheets take time that grows with the square of a document's failing lines (they
build each failure's location by counting preceding siblings: 1,000 empty lines 5 s, 4,000 lines
60 s). Run in the calling process, one such document stopped everything else in it: the API's
event loop (``/healthz``, other submissions), the lease of the stage, a worker's other threads.

Here the calling thread only waits on a pipe (the interpreter lock is free meanwhile) while a
subprocess validates. Each subprocess compiles the stylesheets once when it starts and keeps them
for every document after. A document that takes longer than ``EINVOICE_VALIDATION_TIMEOUT_SECONDS``
or more memory than ``EINVOICE_VALIDATION_MEMORY_MB`` gets a report with the verdict ``invalid``:
a fatal ``VALIDATION-LIMIT`` finding saying which limit and the findings of the layers that had
finished (each layer reports its findings as soon as it is done); its subprocess is killed and a
fresh one started in its place.

Memory: Saxon runs in a GraalVM isolate that reserves its whole heap range (about 32 GB of
address space) when it starts, so an address-space limit cannot bound the Java heap. Two bounds
apply instead: before each document the subprocess sets its address-space limit
(``RLIMIT_AS``) to what it holds plus the limit (which bounds lxml and Python, a ``MemoryError``
there), and the waiting thread reads the subprocess's resident memory every
``MEMORY_POLL_SECONDS`` and stops it when it grew by more than the limit during the document.
A subprocess that holds more than ``memory_mb`` above its size when it was ready, between
documents, is replaced without blaming any document.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from multiprocessing.connection import Connection
from typing import Any

from einvoice.domain.findings import Finding
from einvoice.errors import ValidationEngineError, ValidationStopped, ValidationSubprocessEnded
from einvoice.settings import Settings
from einvoice.validation.limits import limit_finding
from einvoice.validation.report import ValidationReport

log = logging.getLogger(__name__)

#: How often the waiting thread looks at the subprocess's resident memory.
MEMORY_POLL_SECONDS = 0.1
#: How long a new subprocess may take to start and compile its stylesheets.
START_TIMEOUT_SECONDS = 300.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Request:
    data: bytes
    file: str | None
    rules: str
    skip_xsd: bool
    at: date | datetime | None
    institution: str | None


# --- the subprocess ---------------------------------------------------------------------------------


def _serve(conn: Connection, settings: Settings, memory_mb: int, timeout: float) -> None:
    """A validation subprocess: compile, say ready, then validate request after request until the
    pipe closes. Each message back is (kind, payload): ``ready``, ``progress`` (a layer's
    findings), ``done`` (the report), ``memory`` (a MemoryError), ``failed`` (an exception)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    from einvoice.validation.engine import Validator

    validator = Validator(settings)
    try:
        validator.prepare()
    except Exception as exc:  # missing artefacts: each document then gets the engine error
        log.warning("validation subprocess could not compile the stylesheets: %s", exc)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request: _Request | None = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        _limit_address_space(memory_mb)
        _limit_cpu(timeout)
        try:
            report = validator.validate(
                request.data,
                file=request.file,
                rules=request.rules,
                skip_xsd=request.skip_xsd,
                at=request.at,
                institution=request.institution,
                progress=lambda findings: conn.send(("progress", tuple(findings))),
            )
        except MemoryError:
            conn.send(("memory", None))
            return  # what the error interrupted may be in any state: start afresh
        except Exception as exc:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("done", report))


def _limit_cpu(timeout: float) -> None:
    """Allow this document twice the time limit in CPU seconds (and 5 more), after which the
    kernel ends the process (SIGXCPU). The waiting thread stops it long before; this bounds a
    subprocess whose parent is gone (it would otherwise run on until the document is done)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    seconds = int(used.ru_utime + used.ru_stime + 2 * timeout + 5)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        seconds = min(seconds, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, hard))


def _limit_address_space(memory_mb: int) -> None:
    """Allow this document ``memory_mb`` more address space than the process holds now."""
    size = _vm_bytes(os.getpid())
    if size is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = size + memory_mb * _MB
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _statm(pid: int) -> tuple[int, int] | None:
    """(address space, resident) bytes of a process, from /proc (None where there is none)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            size, resident = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return int(size) * _PAGE, int(resident) * _PAGE


def _vm_bytes(pid: int) -> int | None:
    statm = _statm(pid)
    return statm[0] if statm else None


def _rss_bytes(pid: int) -> int | None:
    statm = _statm(pid)
    return statm[1] if statm else None


# --- the parent's side --------------------------------------------------------------------------------


@dataclass
class _Child:
    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection
    ready: bool = False
    ready_rss: int | None = None
    documents: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def wait_ready(self, timeout: float) -> None:
        """Wait for the subprocess to compile and say so. Raises ValidationEngineError."""
        if self.ready:
            return
        if not self.conn.poll(timeout):
            raise ValidationEngineError(f"validation subprocess {self.pid} did not start within {timeout:.0f} s")
        try:
            kind, _ = self.conn.recv()
        except (EOFError, OSError):
            raise ValidationEngineError(
                f"validation subprocess {self.pid} ended while starting (exit code {self.process.exitcode})"
            ) from None
        if kind != "ready":
            raise ValidationEngineError(f"validation subprocess {self.pid} said {kind!r} instead of ready")
        self.ready = True
        self.ready_rss = _rss_bytes(self.pid)

    def validate(self, request: _Request, *, timeout: float, memory_mb: int) -> ValidationReport:
        """Send ``request`` and wait for the report. Raises ValidationStopped at a limit (or when the
        subprocess ended), ValidationEngineError when it failed otherwise."""
        self.documents += 1
        found: list[Finding] = []
        started = time.monotonic()
        deadline = started + timeout
        baseline = _rss_bytes(self.pid)
        try:
            self.conn.send(request)
        except (OSError, ValueError):
            raise ValidationSubprocessEnded() from None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ValidationStopped(f"it took longer than the time limit of {timeout:g} s", found)
            if not self.conn.poll(min(remaining, MEMORY_POLL_SECONDS)):
                rss = _rss_bytes(self.pid)
                if rss is not None and baseline is not None and rss - baseline > memory_mb * _MB:
                    raise ValidationStopped(
                        f"it needed more than the memory limit of {memory_mb:,} MB"
                        f" (after {time.monotonic() - started:.1f} s)",
                        found,
                    )
                continue
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                self.process.join(1)
                raise ValidationStopped(
                    f"the validation subprocess ended (exit code {self.process.exitcode})"
                    f" after {time.monotonic() - started:.1f} s",
                    found,
                ) from None
            if kind == "progress":
                found.extend(payload)
            elif kind == "done":
                report: ValidationReport = payload
                return report
            elif kind == "memory":
                raise ValidationStopped(f"it needed more than the memory limit of {memory_mb:,} MB", found)
            else:
                raise ValidationEngineError(f"validation failed: {payload}")

    def grew_beyond(self, memory_mb: int) -> bool:
        """Whether the idle subprocess holds more than ``memory_mb`` above its size when ready."""
        rss = _rss_bytes(self.pid)
        return rss is not None and self.ready_rss is not None and rss - self.ready_rss > memory_mb * _MB

    def stop(self) -> None:
        """Kill the subprocess now and reap it."""
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                self.process.kill()
        self.process.join(5)


class ValidationPool:
    """Validates documents in ``processes`` subprocesses (started on first use or by ``start()``).

    Thread-safe: each call takes an idle subprocess (waiting for one when all are busy; that wait
    does not count against the time limit) and gives it back afterwards. ``close()`` stops them.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        processes: int | None = None,
        timeout_seconds: float | None = None,
        memory_mb: int | None = None,
    ) -> None:
        self.settings = settings
        self.processes = max(1, processes or settings.validation_processes or 1)
        self.timeout_seconds = timeout_seconds or settings.validation_timeout_seconds
        self.memory_mb = memory_mb or settings.validation_memory_mb
        self._context = multiprocessing.get_context("spawn")  # never a copy of a running saxonche
        # Idle subprocesses: ready ones are taken from the right (the most recently used first),
        # new ones still compiling wait on the left.
        self._idle: collections.deque[_Child] = collections.deque()
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._children: list[_Child] = []
        self._closed = False
        #: Subprocesses stopped at a limit and replaced (for logs, metrics and tests).
        self.replaced = 0

    # --- lifetime ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every subprocess now (they compile in the background); idempotent."""
        with self._lock:
            if self._closed:
                raise ValidationEngineError("the validation pool is closed")
            while len(self._children) < self.processes:
                self._idle.appendleft(self._spawn())

    def _spawn(self) -> _Child:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(child, self.settings, self.memory_mb, self.timeout_seconds),
            name="einvoice-validation",
            daemon=True,
        )
        process.start()
        child.close()
        spawned = _Child(process, parent)
        self._children.append(spawned)
        return spawned

    def close(self) -> None:
        """Stop every subprocess (a document in hand is abandoned: its caller gets an error)."""
        with self._lock:
            self._closed = True
            children, self._children = self._children, []
            self._idle.clear()
            self._returned.notify_all()
        for child in children:
            child.stop()

    def pids(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._children]

    def __enter__(self) -> ValidationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- work --------------------------------------------------------------------------------------

    def validate(
        self,
        data: bytes,
        *,
        file: str | None = None,
        rules: str = "auto",
        skip_xsd: bool = False,
        at: date | datetime | None = None,
        institution: str | None = None,
    ) -> ValidationReport:
        """Validate one document in a subprocess; return its report, as ``Validator.validate`` does.

        A document stopped at the time or memory limit gets the verdict ``invalid`` with a fatal
        ``VALIDATION-LIMIT`` finding after the findings of the layers that had finished. When no
        subprocess can validate (none starts, the pool is closed) the verdict is ``error``, with
        the cause as an ``ENGINE`` finding. Raises ``ValueError`` for an unknown ``rules`` value.
        """
        from einvoice.validation.engine import RULE_CHOICES

        if rules not in RULE_CHOICES:
            raise ValueError(f"rules must be one of {', '.join(RULE_CHOICES)}, not {rules!r}")
        request = _Request(data, file, rules, skip_xsd, at, institution)
        for _ in range(3):  # a subprocess found ended between documents is replaced, the document sent again
            try:
                return self._validate(request)
            except ValidationSubprocessEnded:
                continue
            except ValidationEngineError as exc:
                return _engine_report(request, str(exc))
        return _engine_report(request, "validation subprocesses keep ending before they take a document")

    def _validate(self, request: _Request) -> ValidationReport:
        child = self._take()
        try:
            child.wait_ready(START_TIMEOUT_SECONDS)
        except BaseException:
            self._replace(child, "did not start")
            raise
        try:
            report = child.validate(request, timeout=self.timeout_seconds, memory_mb=self.memory_mb)
        except ValidationStopped as stopped:
            self._replace(child, f"document stopped: {stopped.what}")
            if self._closed:
                raise ValidationEngineError("the validation pool was closed during the document") from None
            return self._limit_report(request, stopped)
        except ValidationEngineError:
            self._give_back(child)
            raise
        except BaseException:
            self._replace(child, "interrupted")
            raise
        self._give_back(child)
        return report

    def _give_back(self, child: _Child) -> None:
        if child.grew_beyond(self.memory_mb):
            self._replace(child, "grew beyond the memory limit between documents")
            return
        with self._lock:
            if self._closed:
                child.stop()
                return
            self._idle.append(child)
            self._returned.notify()

    def _take(self) -> _Child:
        """An idle subprocess (a ready one first), a new one while there are fewer than
        ``processes``, or the next one given back."""
        with self._lock:
            while True:
                if self._closed:
                    raise ValidationEngineError("the validation pool is closed")
                if self._idle:
                    child = self._idle.pop()
                    if child.process.is_alive() or not child.ready:
                        return child
                    self._children.remove(child)
                    child.stop()
                    continue
                if len(self._children) < self.processes:
                    return self._spawn()
                self._returned.wait()

    def _replace(self, child: _Child, why: str) -> None:
        """Stop ``child`` and put a fresh subprocess in its place (it compiles in the background)."""
        child.stop()
        with self._lock:
            if child in self._children:
                self._children.remove(child)
            self.replaced += 1
            if self._closed:
                return
            log.warning("validation subprocess %d replaced: %s", child.pid, why)
            self._idle.appendleft(self._spawn())
            self._returned.notify()

    def _limit_report(self, request: _Request, stopped: ValidationStopped) -> ValidationReport:
        from einvoice.validation import rulesets

        findings: list[Finding] = list(stopped.findings)
        with contextlib.suppress(Exception):  # overrides are a courtesy here; the limit is the news
            findings = list(
                rulesets.apply_overrides(
                    findings, institution=request.institution, at=request.at, settings=self.settings
                )
            )
        findings.append(limit_finding(stopped.what))
        return ValidationReport(
            file=request.file,
            document_type=None,
            customization_id=None,
            rules=None,
            verdict="invalid",
            findings=tuple(findings),
        )


def _engine_report(request: _Request, cause: str) -> ValidationReport:
    from einvoice.domain.findings import Layer, Severity
    from einvoice.validation.engine import RULE_ENGINE

    return ValidationReport(
        file=request.file,
        document_type=None,
        customization_id=None,
        rules=None,
        verdict="error",
        findings=(
            Finding(rule=RULE_ENGINE, severity=Severity.FATAL, layer=Layer.ENGINE, message=f"validation: {cause}"),
        ),
    )
