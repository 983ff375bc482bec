"""The session cookie and CSRF tokens of the accountants' pages.

The cookie carries the session's random token, signed (itsdangerous, HMAC-SHA256) with a key
derived from the receipt signing key (HKDF-SHA256 over its private bytes, with a label of its
own): every API replica shares that key already, so a session opened on one is honoured by the
others, and a forged or altered cookie is refused before any database read. The session itself
(who, until when, its CSRF token) is kept in the database (``user_sessions``), so sign-out,
disabling a user or resetting their password end it at once.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (not sent with cross-site form
posts) and ``Secure`` when the request came over https or ``EINVOICE_UI_SECURE_COOKIES`` says so.
Every form carries a CSRF token: the session's, or before sign-in one of a signed cookie of its
own (double submit), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

from einvoice.receipts import ReceiptSigner
from einvoice.settings import Settings

SESSION_COOKIE = "einvoice_session"
SIGN_IN_CSRF_COOKIE = "einvoice_sign_in"
COOKIE_PATH = "/ui"


def cookie_serializer(signer: ReceiptSigner) -> URLSafeSerializer:
    """The serializer that signs the pages' cookies, keyed from the receipt signing key."""
    private = signer.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"einvoice ui cookies").derive(private)
    return URLSafeSerializer(key, salt="einvoice-ui", signer_kwargs={"digest_method": hashlib.sha256})


def read_cookie(serializer: URLSafeSerializer, request: Request, name: str) -> str | None:
    """The value a signed cookie carries, or None when it is missing or its signature is wrong."""
    raw = request.cookies.get(name)
    if not raw:
        return None
    try:
        value = serializer.loads(raw)
    except BadSignature:
        return None
    return value if isinstance(value, str) else None


def secure(request: Request, settings: Settings) -> bool:
    if settings.ui_secure_cookies is not None:
        return settings.ui_secure_cookies
    return request.url.scheme == "https"


def set_cookie(
    response: Response, serializer: URLSafeSerializer, name: str, value: str, *, secure_cookie: bool
) -> None:
    response.set_cookie(
        name,
        str(serializer.dumps(value)),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookie,
    )


def clear_cookie(response: Response, name: str, *, secure_cookie: bool) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure_cookie)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def trusted_user(request: Request, settings: Settings) -> str | None:
    """The user name an identity provider's reverse proxy vouches for: the value of
    ``EINVOICE_UI_TRUSTED_HEADER`` when the request came straight from one of
    ``EINVOICE_UI_TRUSTED_PROXIES`` (its peer address, never a forwarded one), else None."""
    if not settings.ui_trusted_header or request.client is None:
        return None
    name = (request.headers.get(settings.ui_trusted_header) or "").strip()
    if not name:
        return None
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return None
    if not any(peer in network for network in settings.trusted_proxy_networks):
        return None
    return name
