"""A stand-in model server for proxy tests: a second, real HTTP server process."""


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status = 418 if scope["path"] == "/teapot" else 200
    out = b'{"got": %d, "path": "%s"}' % (len(body), scope["path"].encode())
    headers = [(b"content-type", b"application/json"), (b"x-model", b"m1")]
    if scope["path"] == "/cookies":  # a header that comes twice
        headers += [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})
