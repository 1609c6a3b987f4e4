"""Server-side sessions with a sliding TTL, signed ids, and id regeneration.

The browser holds only `<id>.<HMAC-SHA256 signature>`; the data lives in Redis at
`<prefix><id>` as one codec-encoded (JSON) string. Any app instance that shares the Redis and the
secret reads the same session. Every request that presents a valid id refreshes the TTL (GETEX),
so a session expires `ttl` seconds after its last use. Writes go through the connection's writer
with its failover retries.

`SessionMiddleware` is a pure ASGI middleware (Starlette, FastAPI, anything ASGI): it puts a
`Session` (a dict) at `scope["session"]`, which is where Starlette's `request.session` looks. The
Flask interface, a thin sync face over the same format, is in `cachefleet_client.wsgi_sessions`.

Call `session.regenerate()` after a login: at the end of the request the data moves to a fresh
id, the old id is deleted, and the new cookie is sent (so a fixated id is worthless).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .codecs import Codec, JsonCodec
from .connection import CacheConnection
from .stores import CacheStore, store_for

__all__ = ["Session", "SessionFormat", "SessionMiddleware", "SessionSigner", "SessionStore"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SID = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class SessionSigner:
    """HMAC-SHA256 signatures for session ids. `old_secrets` still verify (key rotation)."""

    def __init__(self, secret: str | bytes, *, old_secrets: Sequence[str | bytes] = ()) -> None:
        if not secret:
            raise ValueError("a session secret is required")
        self._keys = [s.encode() if isinstance(s, str) else s for s in (secret, *old_secrets)]

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(32)

    def _mac(self, key: bytes, sid: str) -> str:
        digest = hmac.new(key, b"cachefleet.session:" + sid.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, sid: str) -> str:
        return f"{sid}.{self._mac(self._keys[0], sid)}"

    def unsign(self, value: str) -> str | None:
        """The id if `value` carries a valid signature, else None."""
        sid, _, mac = value.rpartition(".")
        if not _SID.match(sid):
            return None
        if any(hmac.compare_digest(mac, self._mac(key, sid)) for key in self._keys):
            return sid
        return None


@dataclass(frozen=True, slots=True)
class SessionFormat:
    """Key names, TTL and encoding shared by the async store and the Flask interface."""

    prefix: str = "session:"
    ttl: float = 1800.0
    codec: Codec = field(default_factory=JsonCodec)

    def key(self, sid: str) -> str:
        return self.prefix + sid

    @property
    def px(self) -> int:
        return max(1, int(self.ttl * 1000))

    def encode(self, data: dict[str, Any]) -> bytes:
        return self.codec.encode(data)

    def decode(self, raw: bytes | str | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        value = self.codec.decode(raw if isinstance(raw, bytes) else raw.encode())
        return value if isinstance(value, dict) else None


class SessionStore:
    """Session data in the cache (async): Redis through a `CacheConnection`, or any `CacheStore`
    (`cachefleet_client.memcached.MemcachedStore`). Reads refresh the TTL; on Redis all calls use
    the writer."""

    def __init__(self, connection: CacheConnection | CacheStore, *, fmt: SessionFormat | None = None) -> None:
        self.connection = connection
        self.store = store_for(connection)
        self.fmt = fmt if fmt is not None else SessionFormat()

    async def load(self, sid: str) -> dict[str, Any] | None:
        return self.fmt.decode(await self.store.get_and_touch(self.fmt.key(sid), self.fmt.px))

    async def save(self, sid: str, data: dict[str, Any]) -> None:
        await self.store.set(self.fmt.key(sid), self.fmt.encode(data), self.fmt.px)

    async def delete(self, sid: str) -> None:
        await self.store.delete(self.fmt.key(sid))

    async def move(self, old: str | None, new: str, data: dict[str, Any]) -> None:
        """Store `data` under `new`, then delete `old` (new first: never a moment with neither)."""
        await self.save(new, data)
        if old is not None:
            await self.delete(old)


class Session(dict[str, Any]):
    """The session data of one request; `sid` is None until the session is first stored."""

    def __init__(self, data: dict[str, Any], *, sid: str | None, snapshot: bytes) -> None:
        super().__init__(data)
        self.sid = sid
        self.regenerate_requested = False
        self._snapshot = snapshot

    def regenerate(self) -> None:
        """Move the data to a new id at the end of the request (call it on login)."""
        self.regenerate_requested = True

    def changed(self, encoded: bytes) -> bool:
        # Comparing the encoding catches nested mutations that dict hooks would miss.
        return encoded != self._snapshot


class SessionMiddleware:
    """Pure ASGI middleware providing `scope["session"]` backed by a `SessionStore`.

    `max_age=None` sends a browser-session cookie; otherwise the cookie's Max-Age is re-sent on
    every response so it slides with the server-side TTL.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: SessionStore,
        signer: SessionSigner,
        cookie_name: str = "session",
        path: str = "/",
        domain: str | None = None,
        secure: bool = True,
        httponly: bool = True,
        samesite: str | None = "lax",
        max_age: int | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.signer = signer
        self.cookie_name = cookie_name
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httponly = httponly
        self.samesite = samesite
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        session = await self._open(scope)
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = await self._commit(session)
                if cookie is not None:
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _open(self, scope: Scope) -> Session:
        raw = _cookie(scope, self.cookie_name)
        sid = self.signer.unsign(raw) if raw else None
        data = await self.store.load(sid) if sid else None
        if data is None:
            return Session({}, sid=None, snapshot=self.store.fmt.encode({}))
        return Session(data, sid=sid, snapshot=self.store.fmt.encode(data))

    async def _commit(self, session: Session) -> str | None:
        """Persist the session; returns the Set-Cookie value to send, if any."""
        data = dict(session)
        encoded = self.store.fmt.encode(data)
        if not data:
            if session.sid is None:
                return None
            await self.store.delete(session.sid)
            return self._cookie_header("", max_age=0)
        if session.regenerate_requested or session.sid is None:
            new = self.signer.new_id()
            await self.store.move(session.sid, new, data)
            session.sid = new
            return self._cookie_header(self.signer.sign(new), max_age=self.max_age)
        if session.changed(encoded):
            await self.store.save(session.sid, data)
        if self.max_age is not None:
            return self._cookie_header(self.signer.sign(session.sid), max_age=self.max_age)
        return None

    def _cookie_header(self, value: str, *, max_age: int | None) -> str:
        parts = [f"{self.cookie_name}={value}", f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite:
            parts.append(f"SameSite={self.samesite.capitalize()}")
        return "; ".join(parts)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key != b"cookie":
            continue
        text: str = value.decode("latin-1")
        for item in text.split(";"):
            k, sep, v = item.strip().partition("=")
            if sep and k == name:
                return v.strip().strip('"')
    return None
