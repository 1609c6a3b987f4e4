"""Flask sessions in Redis: the sync face of `cachefleet_client.sessions` (same format, same ids).

    app.session_interface = RedisSessionInterface(connection.sync_writer(), signer=SessionSigner(key))

A session written by a Flask app can be read by an ASGI app using `SessionMiddleware` with the
same prefix, codec and secret, and the other way round. Needs the optional `flask` package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis
import redis.cluster
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from .sessions import SessionFormat, SessionSigner

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response

__all__ = ["RedisSession", "RedisSessionInterface"]


class RedisSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, data: dict[str, Any] | None = None, *, sid: str | None = None, snapshot: bytes = b"") -> None:
        super().__init__(data)
        self.sid = sid
        self.new = sid is None
        self.regenerate_requested = False
        self._snapshot = snapshot

    def regenerate(self) -> None:
        """Move the data to a new id when the response is saved (call it on login)."""
        self.regenerate_requested = True

    def changed(self, encoded: bytes) -> bool:
        return encoded != self._snapshot


class RedisSessionInterface(SessionInterface):
    """A Flask `SessionInterface` with a sliding TTL. Without `signer`, `app.secret_key` signs."""

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        *,
        signer: SessionSigner | None = None,
        fmt: SessionFormat | None = None,
    ) -> None:
        self.client = client
        self.signer = signer
        self.fmt = fmt if fmt is not None else SessionFormat()

    def _signer(self, app: Flask) -> SessionSigner:
        if self.signer is not None:
            return self.signer
        if not app.secret_key:
            raise RuntimeError("RedisSessionInterface needs a signer or app.secret_key")
        return SessionSigner(app.secret_key)

    def open_session(self, app: Flask, request: Request) -> RedisSession:
        raw = request.cookies.get(self.get_cookie_name(app))
        sid = self._signer(app).unsign(raw) if raw else None
        data = self.fmt.decode(self.client.getex(self.fmt.key(sid), px=self.fmt.px)) if sid else None
        if data is None:
            return RedisSession(snapshot=self.fmt.encode({}))
        return RedisSession(data, sid=sid, snapshot=self.fmt.encode(data))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, RedisSession)
        name = self.get_cookie_name(app)
        cookie: dict[str, Any] = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "samesite": self.get_cookie_samesite(app),
            "httponly": self.get_cookie_httponly(app),
        }
        if session.accessed:
            response.vary.add("Cookie")
        data = dict(session)
        encoded = self.fmt.encode(data)
        if not data:
            if session.sid is not None:
                self.client.delete(self.fmt.key(session.sid))
                response.delete_cookie(name, **cookie)
                response.vary.add("Cookie")
            return
        send_cookie = session.permanent
        if session.regenerate_requested or session.sid is None:
            new = SessionSigner.new_id()
            self.client.set(self.fmt.key(new), encoded, px=self.fmt.px)
            if session.sid is not None:
                self.client.delete(self.fmt.key(session.sid))
            session.sid = new
            send_cookie = True
        elif session.changed(encoded):
            self.client.set(self.fmt.key(session.sid), encoded, px=self.fmt.px)
        if send_cookie:
            response.set_cookie(
                name,
                self._signer(app).sign(session.sid),
                expires=self.get_expiration_time(app, session),
                **cookie,
            )
            response.vary.add("Cookie")
