"""Who may command an agent (its certificate check, the chain aside), and its event log's long poll."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.agent import Certificates

from cachefleet.agent.events import EventLog
from cachefleet.agent.trust import PeerCheck, refusal
from cachefleet.hosts.agent_api import EventKind
from cachefleet.model.nodes import node_key

NODE = node_key("orders-001", "0001")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


def leaf(path: Path) -> str:
    text = path.read_text()
    return text[text.index("-----BEGIN CERTIFICATE-----") :]


def test_only_the_control_planes_certificate_may_command(certs: Certificates) -> None:
    assert refusal(leaf(certs.control_plane)) is None
    assert "another role" in (refusal(leaf(certs.other_role)) or "")
    assert "another role" in (refusal(leaf(certs.agent)) or "")
    assert "names someone else" in (refusal(leaf(certs.other_name)) or "")
    assert refusal("not a certificate") == "the client certificate cannot be read"


async def _call(app: PeerCheck, chain: list[str] | None) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/v1/info", "headers": []}
    if chain is not None:
        scope["extensions"] = {"tls": {"client_cert_chain": chain}}

    async def inner(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await PeerCheck(inner)(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_the_middleware_answers_403_in_json(certs: Certificates) -> None:
    status, _ = asyncio.run(_call(PeerCheck(lambda *a: None), [leaf(certs.control_plane)]))  # type: ignore[arg-type]
    assert status == 200
    status, body = asyncio.run(_call(PeerCheck(lambda *a: None), [leaf(certs.other_role)]))  # type: ignore[arg-type]
    assert (status, body["error"]["code"]) == (403, "Forbidden")
    status, body = asyncio.run(_call(PeerCheck(lambda *a: None), None))  # type: ignore[arg-type]
    assert (status, body["error"]["message"]) == (403, "no client certificate")


def test_event_log_numbers_events_and_answers_a_long_poll_at_the_first_one() -> None:
    async def scenario() -> None:
        log = EventLog(capacity=3)
        assert await log.wait_after(0, 0.01) == []
        waiting = asyncio.create_task(log.wait_after(0, 5))
        await asyncio.sleep(0.01)
        log.emit(EventKind.EXITED, NODE, pid=1, expected=False)
        (first,) = await asyncio.wait_for(waiting, 1)
        assert (first.seq, first.kind, first.fields) == (1, "exited", {"pid": 1, "expected": False})
        for pid in (2, 3, 4):
            log.emit(EventKind.RESTARTED, NODE, pid=pid)
        assert [e.seq for e in log.after(1) or []] == [2, 3, 4]
        assert log.after(0) is None  # event 1 was dropped: the reader must read everything again
        assert log.after(4) == []
        waiting = asyncio.create_task(log.wait_after(4, 30))
        await asyncio.sleep(0.01)
        log.close()  # the agent stops: a waiting poll answers at once, and no new one waits
        assert await asyncio.wait_for(waiting, 1) == []
        assert await asyncio.wait_for(log.wait_after(4, 30), 1) == []

    asyncio.run(scenario())
