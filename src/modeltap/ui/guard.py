"""The page's front door: read-only methods, the token, the Host header, security headers.

A pure ASGI middleware (like starlette's GZipMiddleware). In order:

- Only GET and HEAD: nothing on the page writes or deletes (405 otherwise).
- Host: bound to a loopback address, only loopback host names are answered (400
  otherwise), so a web page elsewhere cannot reach the data through DNS rebinding.
- Token: when one is set (MODELTAP_UI_TOKEN), every request carries it: the header
  `Authorization: Bearer TOKEN`, the cookie this sets, or `?token=TOKEN` (then answered
  with a redirect to the same URL without it, setting the cookie). 401 otherwise.
- Every answer gets a strict Content-Security-Policy (scripts only from the page's own
  static files, no inline script), nosniff, no framing, no referrer and no caching.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "CSP", "LOOPBACK_HOSTS", "Guard", "is_loopback"]

COOKIE = "modeltap_ui_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost."""
    host = host.strip().lower().strip("[]")
    return host in LOOPBACK_HOSTS or (
        host.startswith("127.")
        and all(p.isdigit() for p in host.split("."))
        and host.count(".") == 3
    )


class Guard:
    def __init__(self, app: ASGIApp, *, token: str | None = None, loopback_only: bool = True):
        self.app = app
        self.token = token or None
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(
                send, 405, "405: this page is read-only; use GET", [(b"allow", b"GET, HEAD")]
            )
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.loopback_only and not is_loopback(_host_name(headers.get("host", ""))):
            await _plain(send, 400, "400: unexpected Host header; open the page at 127.0.0.1")
            return
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if _same(query.get("token"), self.token):
                await _redirect_without_token(scope, send, self.token)
                return
            if not (_same(_bearer(headers), self.token) or _same(_cookie(headers), self.token)):
                await _plain(
                    send,
                    401,
                    "401: this page needs its token: open it with ?token=... "
                    "(the value of MODELTAP_UI_TOKEN) or send Authorization: Bearer ...",
                    [(b"www-authenticate", b'Bearer realm="modeltap"')],
                )
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in given]
                if b"content-security-policy" not in given:
                    extra.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_name(host: str) -> str:
    """The name in a Host header, without its port ("[::1]:8765" -> "::1")."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _bearer(headers: dict[str, str]) -> str | None:
    kind, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if kind.lower() == "bearer" else None


def _cookie(headers: dict[str, str]) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header: as if none
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


async def _redirect_without_token(scope: Scope, send: Send, token: str) -> None:
    pairs = [
        (k, v)
        for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        if k != "token"
    ]
    path = quote(scope.get("root_path", "") + scope["path"])
    location = path + (f"?{urlencode(pairs)}" if pairs else "")
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await _plain(
        send,
        303,
        "303: token accepted",
        [
            (b"location", location.encode("latin-1", "replace")),
            (b"set-cookie", cookie.encode("latin-1")),
        ],
    )


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
                (b"content-security-policy", CSP.encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
