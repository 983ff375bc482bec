"""The pipeline benchmark: its arithmetic (quantiles, figures from document histories) and the HTTP client of
its submissions, against a tiny server started in the test."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from einvoice.benchmarks.pipeline import (
    ConnectionPool,
    HttpProtocolError,
    HttpResponse,
    InvoiceLine,
    PipelineResult,
    ServerClosedError,
    Submission,
    Target,
    _quantile,
    _summarise,
    run_pipeline,
)

T = TypeVar("T")


def test_nearest_rank_quantiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _quantile(values, 0.5) == 50.0
    assert _quantile(values, 0.99) == 99.0
    assert _quantile([3.0], 0.99) == 3.0
    assert _quantile([], 0.5) is None


def test_line_amounts_round_half_up() -> None:
    assert InvoiceLine("x", Decimal("3"), Decimal("0.335")).net == Decimal("1.01")


def _detail(received: str, start: str, done: str | None, status: str) -> dict[str, object]:
    history = [
        {"from_status": None, "to_status": "received", "at": received},
        {"from_status": "received", "to_status": "validating", "at": start},
    ]
    if done:
        history.append({"from_status": "validating", "to_status": status, "at": done})
    return {"received_at": received, "status": status, "history": history}


def test_summary_from_histories() -> None:
    sent = [
        Submission(i, 0.0, sent_at=float(i), latency=0.01 * (i + 1), status=202, document_id=str(i)) for i in range(3)
    ]
    sent.append(Submission(3, 0.0, sent_at=3.0, status=503, error="HTTP 503"))
    details = {
        "0": _detail("2026-11-22T08:00:00.000000Z", "2026-11-22T08:00:00.500000Z", "2026-11-22T08:00:01Z", "validated"),
        "1": _detail("2026-11-22T08:00:01Z", "2026-11-22T08:00:01.200000Z", "2026-11-22T08:00:02Z", "rejected"),
        "2": _detail("2026-11-22T08:00:02Z", "2026-11-22T08:00:03Z", None, "validating"),
    }
    result = _summarise(50.0, 4, sent, 3.0, details, [0.5, 1.5])
    assert (result.accepted, result.failed) == (3, 1)
    assert result.errors == {"HTTP 503": 1}
    assert (result.validated, result.rejected, result.unfinished) == (1, 1, 1)
    assert result.pipeline_seconds == 2.0
    assert result.docs_per_second == 1.0
    assert result.queue_wait_max == 1.0
    assert result.latency_p99 == 0.03
    assert result.queue_lag_max_metrics == 1.5
    assert "documents/s" in result.to_text()


# --- the submissions' HTTP client, against a tiny server in the test -------------------------------

Reply = bytes | list[bytes] | None  # the answer's bytes (a list: written piece by piece); None: close, no answer


@dataclass
class Seen:
    connection: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TinyServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers each request with what ``respond`` returns, then
    keeps the connection (``close=False``) or closes it."""

    respond: Callable[[Seen], tuple[Reply, bool]]
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def __aenter__(self) -> TinyServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()  # a handler waiting for a request sees the end of file and returns
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ")
                headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(number, method, path, headers, body)
                self.seen.append(seen)
                reply, keep = self.respond(seen)
                if reply is None:
                    return
                for piece in [reply] if isinstance(reply, bytes) else reply:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.002)  # separate segments: the client reads a response in parts
                if not keep:
                    return
        finally:
            writer.close()
            self._tasks.discard(task)


def answer(status: int, body: bytes = b'{"id": "d1"}', *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} Whatever", "content-type: application/json", *extra]
    if not any(h.lower().startswith("transfer-encoding") for h in extra):
        head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 5))


HEADERS = {"Authorization": "Bearer eik_secret", "Content-Type": "application/xml"}


def test_requests_are_encoded_whole_before_sending() -> None:
    pool = ConnectionPool("http://example.org/api/", 1)
    raw = pool.encode("POST", "/v1/documents", b"<Invoice/>", HEADERS)
    assert raw == (
        b"POST /api/v1/documents HTTP/1.1\r\nHost: example.org\r\nAuthorization: Bearer eik_secret\r\n"
        b"Content-Type: application/xml\r\nContent-Length: 10\r\n\r\n<Invoice/>"
    )
    assert ConnectionPool("http://[::1]:8000", 1).authority == "[::1]:8000"
    with pytest.raises(ValueError, match="line break"):
        pool.encode("POST", "/", b"", {"Authorization": "Bearer x\r\nX-Evil: 1"})


def test_keep_alive_connection_is_reused() -> None:
    async def scenario() -> tuple[TinyServer, ConnectionPool, list[HttpResponse]]:
        async with TinyServer(lambda seen: (answer(202, b'{"id": "%d"}' % len(seen.body)), True)) as server:
            pool = ConnectionPool(server.url, 4)
            responses = [await pool.request(pool.encode("POST", "/v1/documents", b"x" * n, HEADERS)) for n in (1, 2, 3)]
            await pool.close()
            return server, pool, responses

    server, pool, responses = run(scenario())
    assert [(r.status, json.loads(r.body)["id"]) for r in responses] == [(202, "1"), (202, "2"), (202, "3")]
    assert all(r.keep_alive for r in responses)
    assert (server.connections, pool.opened) == (1, 1)
    assert [(s.connection, s.method, s.path, s.body) for s in server.seen] == [
        (1, "POST", "/v1/documents", b"x" * n) for n in (1, 2, 3)
    ]
    assert server.seen[0].headers["authorization"] == "Bearer eik_secret"
    assert server.seen[0].headers["host"] == server.url.removeprefix("http://")


def test_busy_connections_make_requests_wait() -> None:
    async def scenario() -> tuple[TinyServer, ConnectionPool, list[HttpResponse]]:
        async with TinyServer(lambda seen: (answer(202), True)) as server:
            pool = ConnectionPool(server.url, 2)
            raw = pool.encode("POST", "/v1/documents", b"<x/>", HEADERS)
            responses = await asyncio.gather(*(pool.request(raw) for _ in range(6)))
            await pool.close()
            return server, pool, responses

    server, pool, responses = run(scenario())
    assert [r.status for r in responses] == [202] * 6
    assert (server.connections, pool.opened, len(server.seen)) == (2, 2, 6)


def test_connection_closed_by_the_server_is_reopened() -> None:
    replies: dict[int, tuple[Reply, bool]] = {
        1: (answer(202, b'{"id": "a"}', "connection: close"), False),  # says so, then closes
        2: (answer(202, b'{"id": "b"}'), False),  # closes without saying so
        3: ([b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n", b'{"id": "c"}'], False),  # EOF frames it
    }

    async def scenario() -> tuple[TinyServer, ConnectionPool, list[HttpResponse]]:
        async with TinyServer(
            lambda seen: replies.get(len(server.seen), (answer(202, b'{"id": "d"}'), True))
        ) as server:
            pool = ConnectionPool(server.url, 1)
            raw = pool.encode("POST", "/v1/documents", b"<x/>", HEADERS)
            responses = []
            for _ in range(4):
                responses.append(await pool.request(raw))
                await asyncio.sleep(0.01)  # the end of file reaches the client
            await pool.close()
            return server, pool, responses

    server, pool, responses = run(scenario())
    assert [json.loads(r.body)["id"] for r in responses] == ["a", "b", "c", "d"]
    assert [r.keep_alive for r in responses] == [False, True, False, True]
    assert (len(server.seen), server.connections, pool.opened) == (4, 4, 4)  # no request sent twice


def test_request_on_a_connection_closed_while_idle_goes_once_more() -> None:
    async def scenario() -> tuple[TinyServer, ConnectionPool, HttpResponse]:
        # the server reads the second request on the first connection and hangs up without an answer
        def respond(seen: Seen) -> tuple[Reply, bool]:
            return (answer(202), True) if len(server.seen) != 2 else (None, False)

        async with TinyServer(respond) as server:
            pool = ConnectionPool(server.url, 1)
            raw = pool.encode("POST", "/v1/documents", b"<x/>", HEADERS)
            await pool.request(raw)
            response = await pool.request(raw)
            await pool.close()
            return server, pool, response

    server, pool, response = run(scenario())
    assert response.status == 202
    assert [s.connection for s in server.seen] == [1, 1, 2]
    assert pool.opened == 2


def test_fresh_connection_closed_without_answer_fails() -> None:
    async def scenario() -> None:
        async with TinyServer(lambda seen: (None, False)) as server:
            pool = ConnectionPool(server.url, 1)
            await pool.request(pool.encode("POST", "/v1/documents", b"<x/>", HEADERS))

    with pytest.raises(ServerClosedError):
        run(scenario())


def test_chunked_response() -> None:
    chunked = [
        b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        b"6;ext=1\r\n" + b'{"id":' + b"\r\n",
        b"A\r\n" + b' "chunked"' + b"\r\n1\r\n}\r\n",
        b"0\r\nx-trailer: yes\r\n\r\n",
    ]

    async def scenario() -> tuple[TinyServer, list[HttpResponse]]:
        async with TinyServer(lambda seen: (chunked if len(server.seen) == 1 else answer(200), True)) as server:
            pool = ConnectionPool(server.url, 1)
            raw = pool.encode("POST", "/v1/documents", b"<x/>", HEADERS)
            responses = [await pool.request(raw), await pool.request(raw)]
            await pool.close()
            return server, responses

    server, (first, second) = run(scenario())
    assert first.body == b'{"id": "chunked"}'
    assert second.status == 200
    assert json.loads(second.body) == {"id": "d1"}
    assert server.connections == 1


def test_error_answers_keep_their_status_and_body() -> None:
    replies = [answer(422, b'{"detail": "not UBL"}'), answer(503, b"busy"), answer(202, b'{"id": "ok"}')]
    pieces = [[reply[:20], reply[20:-3], reply[-3:]] for reply in replies]  # the body arrives in parts

    async def scenario() -> tuple[TinyServer, list[HttpResponse]]:
        async with TinyServer(lambda seen: (pieces[len(server.seen) - 1], True)) as server:
            pool = ConnectionPool(server.url, 1)
            raw = pool.encode("POST", "/v1/documents", b"<x/>", HEADERS)
            responses = [await pool.request(raw) for _ in replies]
            await pool.close()
            return server, responses

    server, responses = run(scenario())
    assert [(r.status, r.body) for r in responses] == [
        (422, b'{"detail": "not UBL"}'),
        (503, b"busy"),
        (202, b'{"id": "ok"}'),
    ]
    assert server.connections == 1


def test_interim_and_bodiless_answers() -> None:
    replies: list[Reply] = [
        [b"HTTP/1.1 100 Continue\r\n\r\n", answer(202, b'{"id": "after-100"}')],
        b"HTTP/1.1 204 No Content\r\n\r\n",  # no Content-Length, and no body either
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}",  # HTTP/1.0 without keep-alive: closes
    ]

    async def scenario() -> list[HttpResponse]:
        async with TinyServer(lambda seen: (replies[len(server.seen) - 1], len(server.seen) < 3)) as server:
            pool = ConnectionPool(server.url, 1)
            raw = pool.encode("POST", "/v1/documents", b"<x/>", HEADERS)
            responses = [await pool.request(raw) for _ in replies]
            await pool.close()
            return responses

    first, second, third = run(scenario())
    assert (first.status, first.body) == (202, b'{"id": "after-100"}')
    assert (second.status, second.body, second.keep_alive) == (204, b"", True)
    assert (third.status, third.body, third.keep_alive) == (200, b"{}", False)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 2\r\n\r\n{}", "Content-Encoding"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -2\r\n\r\n{}", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nname : value\r\n\r\n", "header line"),
        (b"SPDY/3 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\ncontent-le", "inside the response head"),
    ],
)
def test_malformed_answers_fail_loudly(reply: bytes, message: str) -> None:
    async def scenario() -> None:
        async with TinyServer(lambda seen: (reply, False)) as server:
            pool = ConnectionPool(server.url, 1)
            await pool.request(pool.encode("POST", "/v1/documents", b"<x/>", HEADERS))

    with pytest.raises(HttpProtocolError, match=message):
        run(scenario())


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: nothing answers there

        async def scenario() -> None:
            pool = ConnectionPool(f"http://127.0.0.1:{port}", 1)
            await pool.request(pool.encode("POST", "/v1/documents", b"<x/>", HEADERS))

        with pytest.raises(ConnectionRefusedError):
            run(scenario())


def test_run_against_a_tiny_engine() -> None:
    """The whole run: health check, submissions over the pool, polling, details."""
    detail = _detail("2026-11-22T08:00:00Z", "2026-11-22T08:00:00.100000Z", "2026-11-22T08:00:00.300000Z", "validated")

    posts: list[Seen] = []

    def respond(seen: Seen) -> tuple[Reply, bool]:
        if seen.method == "POST":
            posts.append(seen)
            number = len(posts)
            if number == 3:
                return answer(503, b'{"detail": "busy"}'), True
            if number in (4, 5):
                return None, False  # hangs up: on a pre-opened connection it goes once more, and fails again
            return answer(202, b'{"id": "doc-%d"}' % number), True
        if seen.path.startswith("/v1/documents?"):
            return answer(200, b'{"count": 0, "items": []}'), True
        if seen.path.startswith("/v1/documents/"):
            return answer(200, json.dumps(detail).encode()), True
        if seen.path == "/metrics":
            return answer(200, b"einvoice_queue_lag_seconds 0.25\n"), True
        return answer(200, b'{"status": "ok"}'), True

    async def scenario() -> PipelineResult:
        async with TinyServer(respond) as server:
            target = Target(server.url, "eik_secret", "0216:003720000006", "FI20000006", "0216:003710000008")
            return await run_pipeline(target, rate=100.0, count=6, duration=1.0, settle_timeout=2.0, connections=2)

    result = run(scenario())
    assert all(s.headers["authorization"] == "Bearer eik_secret" for s in posts)
    assert all(s.body.startswith(b"<?xml") and b"<Invoice" in s.body for s in posts)
    assert (result.submitted, result.accepted, result.failed) == (6, 4, 2)
    assert result.errors == {"HTTP 503": 1, "ServerClosedError": 1}
    assert len(posts) == 7  # the hung-up one went twice
    assert posts[4].connection > max(s.connection for s in posts[:4])  # once more, on a fresh connection
    assert (result.validated, result.unfinished) == (4, 0)
    assert result.queue_lag_max_metrics == 0.25
    assert result.connections == 2
    assert result.connections_opened >= 3
    assert result.client_cpu_per_submission is not None
    assert result.latency_p50 is not None
    assert "2 connections" in result.to_text()


def test_cpu_probe_counts_this_process_and_per_document_divides() -> None:
    import os

    from einvoice.benchmarks import cpu

    if not cpu.available():
        pytest.skip("no /proc on this system")
    probe = cpu.CpuProbe({"api": [os.getpid()], "gone": [2**22 + 7]})
    before = probe()
    deadline = time.process_time() + 0.06
    while time.process_time() < deadline:  # burn some CPU
        pass
    after = probe()
    # /proc counts in clock ticks (10 ms): the 60 ms burnt may read as two ticks fewer
    assert after["bench"] - before["bench"] >= 0.04 - 1e-9
    # the same process, named twice: read twice, a clock tick (10 ms) or two may pass between the reads
    assert abs(after["api"] - after["bench"]) <= 0.02
    assert after["gone"] == 0.0  # a process that does not exist counts nothing
    assert {"postgres", "rabbitmq", "validation"} <= set(after)
    shares = cpu.per_document({"api": 1.0, "bench": 2.0}, {"api": 3.0, "bench": 2.5}, 4)
    assert shares == {"api": 0.5, "bench": 0.125}
    assert cpu.per_document(before, after, 0) == {}
