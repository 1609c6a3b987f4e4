"""What a Sentinel publishes about the masters it watches, read from its pub/sub messages. Pure.

Sentinel publishes each event on a channel named after it (``+sdown``, ``+switch-master``...). Most
messages describe one instance, as ``<type> <name> <ip> <port>``, followed for a replica or a peer
Sentinel by ``@ <master name> <master ip> <master port>``, then sometimes free text (``#quorum 2/2``).
``+switch-master`` says ``<master name> <old ip> <old port> <new ip> <new port>``. A few events
name no master at all (``+new-epoch``, ``+tilt``).

Only the events after which the control plane has something to look at are subscribed to
(``CHANNELS``, ``PATTERNS``): a role that changed, an instance that went down or came back, a
failover that ended or was given up. The steps of a failover in between (``+try-failover``,
``+elected-leader``, ``+failover-state-*``...) are left out: once a pass has seen the master down,
it keeps looking on its own until the group has settled again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Channels whose messages wake the group a master belongs to.
CHANNELS = (
    "+switch-master",  # the primary changed (every Sentinel, the leader last)
    "+promoted-slave",  # the leader promoted a replica (~0.06 s before the first +switch-master)
    "+failover-end",
    "+failover-end-for-timeout",
    "+sdown",  # an instance (the master, a replica, a peer Sentinel) is down for this Sentinel
    "-sdown",
    "+odown",
    "-odown",
    "+slave",  # a replica it had not listed
    "+convert-to-slave",  # an old primary that came back is made a replica
    "+role-change",  # an instance reports another role than Sentinel thought
    "+slave-reconf-done",
    "+sentinel",  # a peer it had not listed
    "-dup-sentinel",
    "+reset-master",
    "-monitor",  # it no longer watches the master (SENTINEL REMOVE): a shared Sentinel's group joins again
)
PATTERNS = ("-failover-abort-*",)  # a failover given up (no good replica, not elected...)

INSTANCE_TYPES = frozenset({"master", "slave", "sentinel"})


@dataclass(frozen=True)
class Instance:
    type: str  # master | slave | sentinel
    name: str  # a master's name, a replica's ip:port, a Sentinel's run id
    address: tuple[str, int]


@dataclass(frozen=True)
class SentinelEvent:
    channel: str  # the event, e.g. "+sdown"
    master: str | None  # the name of the master it concerns; None for an event about none
    instance: Instance | None = None  # the instance it describes, when it describes one
    new_primary: tuple[str, int] | None = None  # +switch-master only


def parse(channel: str, message: str) -> SentinelEvent:
    """The event in one published message. A message in no known shape concerns no master (it is
    logged by the caller, not guessed at)."""
    words = message.split()
    if channel == "+switch-master":
        if len(words) == 5 and _port(words[2]) is not None and (port := _port(words[4])) is not None:
            return SentinelEvent(channel, words[0], new_primary=(words[3], port))
        return SentinelEvent(channel, None)
    instance = _instance(words)
    if instance is None:
        return SentinelEvent(channel, None)
    if instance.type == "master":
        return SentinelEvent(channel, instance.name, instance)
    if len(words) >= 8 and words[4] == "@" and _port(words[7]) is not None:
        return SentinelEvent(channel, words[5], instance)
    return SentinelEvent(channel, None, instance)


def _instance(words: Sequence[str]) -> Instance | None:
    if len(words) < 4 or words[0] not in INSTANCE_TYPES:
        return None
    port = _port(words[3])
    if port is None:
        return None
    return Instance(words[0], words[1], (words[2], port))


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def push(reply: object) -> tuple[str, str] | None:
    """Pure: (channel, message) from a pushed reply of a subscribed connection: ``message`` for a
    channel, ``pmessage`` for a pattern; None for anything else (a subscription's confirmation)."""
    if not isinstance(reply, list) or not reply or not all(isinstance(part, str) for part in reply):
        return None
    if reply[0] == "message" and len(reply) == 3:
        return reply[1], reply[2]
    if reply[0] == "pmessage" and len(reply) == 4:
        return reply[2], reply[3]
    return None
