"""Sentinel's pub/sub messages read into events: which master each concerns, in every shape Sentinel
publishes (the shapes are Redis 7's, as a real Sentinel sends them: tests/integration/test_events_driven.py)."""

from __future__ import annotations

import pytest

from cachefleet.engines import sentinel_events
from cachefleet.engines.sentinel_events import Instance, SentinelEvent, parse, push


def test_switch_master_names_the_master_and_its_new_address() -> None:
    assert parse("+switch-master", "rg-1 127.0.0.1 21001 127.0.0.1 21003") == SentinelEvent(
        "+switch-master", "rg-1", new_primary=("127.0.0.1", 21003)
    )


def test_an_event_about_the_master_itself() -> None:
    event = parse("+sdown", "master rg-1 127.0.0.1 21001")
    assert event == SentinelEvent("+sdown", "rg-1", Instance("master", "rg-1", ("127.0.0.1", 21001)))


def test_free_text_after_the_instance_is_ignored() -> None:
    assert parse("+odown", "master rg-1 127.0.0.1 21001 #quorum 2/2").master == "rg-1"


@pytest.mark.parametrize(
    ("channel", "message", "instance"),
    [
        (
            "+promoted-slave",
            "slave 127.0.0.1:21003 127.0.0.1 21003 @ rg-1 127.0.0.1 21001",
            Instance("slave", "127.0.0.1:21003", ("127.0.0.1", 21003)),
        ),
        (
            "-sdown",
            "sentinel 0123456789abcdef0123456789abcdef01234567 127.0.0.1 21010 @ rg-1 127.0.0.1 21001",
            Instance("sentinel", "0123456789abcdef0123456789abcdef01234567", ("127.0.0.1", 21010)),
        ),
        (
            "+convert-to-slave",
            "slave 127.0.0.1:21001 127.0.0.1 21001 @ rg-1 127.0.0.1 21003",
            Instance("slave", "127.0.0.1:21001", ("127.0.0.1", 21001)),
        ),
    ],
)
def test_an_event_about_a_replica_or_a_peer_names_its_master_after_the_at(
    channel: str, message: str, instance: Instance
) -> None:
    assert parse(channel, message) == SentinelEvent(channel, "rg-1", instance)


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("+new-epoch", "7"),
        ("+tilt", "#tilt mode entered"),
        ("+switch-master", "rg-1 127.0.0.1 21001"),  # cut short
        ("+switch-master", "rg-1 127.0.0.1 21001 127.0.0.1 port"),
        ("+sdown", "master rg-1 127.0.0.1"),
        ("+sdown", "slave 127.0.0.1:21003 127.0.0.1 21003 @ rg-1"),  # its master cut short
        ("+sdown", "replica rg-1 127.0.0.1 21001"),  # not a type Sentinel uses
        ("+sdown", "master rg-1 127.0.0.1 70000"),
        ("+sdown", ""),
    ],
)
def test_a_message_in_no_known_shape_concerns_no_master(channel: str, message: str) -> None:
    assert parse(channel, message).master is None


def test_pushed_messages_for_a_channel_and_for_a_pattern() -> None:
    assert push(["message", "+sdown", "master rg-1 127.0.0.1 21001"]) == ("+sdown", "master rg-1 127.0.0.1 21001")
    assert push(["pmessage", "-failover-abort-*", "-failover-abort-no-good-slave", "master rg-1 127.0.0.1 1"]) == (
        "-failover-abort-no-good-slave",
        "master rg-1 127.0.0.1 1",
    )


@pytest.mark.parametrize(
    "reply",
    [["subscribe", "+sdown", 1], ["psubscribe", "-failover-abort-*", 16], "OK", None, [], ["message", "+sdown"]],
)
def test_a_confirmation_or_anything_else_is_no_message(reply: object) -> None:
    assert push(reply) is None


def test_the_steps_inside_a_failover_are_not_subscribed_to() -> None:
    # A pass that saw the master down follows the failover on its own; its steps would only wake it
    # again. What ends one, or changes a role, is subscribed to.
    subscribed = set(sentinel_events.CHANNELS)
    assert {"+switch-master", "+promoted-slave", "+sdown", "-sdown", "+failover-end"} <= subscribed
    assert not subscribed & {"+try-failover", "+elected-leader", "+new-epoch", "+vote-for-leader", "+tilt"}
