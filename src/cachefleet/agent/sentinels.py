"""Asking a group's Sentinels which node is its primary, for the restart decision (``agent.restart``).

Every Sentinel at once, over raw RESP (``engines.resp``), two commands each:
``SENTINEL GET-MASTER-ADDR-BY-NAME`` names the primary clients should use (a failover's leader names
the promoted node there as soon as it reconfigures the other replicas, before its own
``+switch-master``), and ``SENTINEL MASTER`` says whether a failover is in progress (flag
``failover_in_progress``). A Sentinel that answers with an error does not monitor the group; one
that does not answer in time is unreachable. The agent asks while a node is down, so a slow
Sentinel must not hold the restart up for long: each question has ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio

from cachefleet.agent.restart import Answer, Names, NotMonitoring, Unreachable
from cachefleet.engines import resp
from cachefleet.engines.resp import ClientTls
from cachefleet.engines.sentinel import reply_fields
from cachefleet.hosts.base import RestartPolicy

TIMEOUT = 0.3


async def ask(policy: RestartPolicy, *, tls: ClientTls | None = None) -> list[Answer]:
    """Each Sentinel's answer about ``policy.master_name``, in the order of ``policy.sentinels``;
    over TLS (``tls``: the agent's CA and certificate) when the policy says they speak only TLS."""
    secure = tls if policy.tls else None
    return list(await asyncio.gather(*(_ask_one(host, port, policy, secure) for host, port in policy.sentinels)))


async def _ask_one(host: str, port: int, policy: RestartPolicy, tls: ClientTls | None) -> Answer:
    name = policy.master_name
    commands: list[tuple[str, ...]] = [("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name), ("SENTINEL", "MASTER", name)]
    if policy.password is not None:
        commands.insert(0, ("AUTH", policy.password))
    try:
        replies = await resp.exchange(host, port, commands, timeout=TIMEOUT, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError):
        return Unreachable()
    if policy.password is not None and isinstance(replies.pop(0), resp.ReplyError):
        return Unreachable()  # it refused us: it says nothing
    address, master = replies
    return answer_from_replies(address, master)


def answer_from_replies(address: resp.Reply, master: resp.Reply) -> Answer:
    """Pure: what the replies to ``GET-MASTER-ADDR-BY-NAME`` and ``SENTINEL MASTER`` say.

    Only Sentinel's own "no such master" counts as not monitoring the group: any other error (one
    that wants a password, say) is no answer, never a licence to start the node as it was."""
    if address is None and isinstance(master, resp.ReplyError) and "no such master" in str(master).lower():
        return NotMonitoring()
    if not (isinstance(address, list) and len(address) == 2 and isinstance(master, list)):
        return Unreachable()
    try:
        primary = (str(address[0]), int(str(address[1])))
    except ValueError:
        return Unreachable()
    flags = set(reply_fields(master).get("flags", "").split(","))
    return Names(primary, failover_in_progress="failover_in_progress" in flags)
