"""Pure parts of the Memcached client: the ketama ring and the discovery answer's parsing."""

from __future__ import annotations

import pytest

from cachefleet_client.memcached import DiscoveryError, KetamaRing, parse_cluster_config

KEYS = [f"user:{i}" for i in range(20_000)]


@pytest.mark.parametrize("count", [1, 3, 5, 10, 39])
def test_adding_a_node_moves_about_one_share_and_only_to_the_new_node(count: int) -> None:
    nodes = [f"10.0.0.{i}:11211" for i in range(count)]
    before = KetamaRing(nodes)
    after = KetamaRing([*nodes, "10.0.1.1:11211"])
    moved = [k for k in KEYS if before.get_node(k) != after.get_node(k)]
    assert {after.get_node(k) for k in moved} == {"10.0.1.1:11211"}
    assert len(moved) / len(KEYS) <= 1.2 / (count + 1)


def test_removing_a_node_moves_only_its_keys() -> None:
    nodes = [f"10.0.0.{i}:11211" for i in range(4)]
    full, without = KetamaRing(nodes), KetamaRing(nodes[1:])
    for key in KEYS[:5000]:
        if full.get_node(key) != nodes[0]:
            assert without.get_node(key) == full.get_node(key)


def test_every_node_gets_a_fair_share() -> None:
    ring = KetamaRing([f"10.0.0.{i}:11211" for i in range(3)])
    counts: dict[str | None, int] = {}
    for key in KEYS:
        node = ring.get_node(key)
        counts[node] = counts.get(node, 0) + 1
    assert len(counts) == 3
    assert all(0.75 / 3 <= n / len(KEYS) <= 1.25 / 3 for n in counts.values())


def test_an_empty_ring_has_no_node() -> None:
    assert KetamaRing([]).get_node("k") is None


def test_parses_the_documented_answer_by_ip_or_by_name() -> None:
    answer = (
        b"CONFIG cluster 0 136\r\n12\n"
        b"myCluster.pc4ldq.0001.use1.cache.amazonaws.com|10.82.235.120|11211 "
        b"myCluster.pc4ldq.0002.use1.cache.amazonaws.com|10.80.249.27|11211\n\r\nEND\r\n"
    )
    config = parse_cluster_config(answer)
    assert config.version == 12
    assert config.nodes == (("10.82.235.120", 11211), ("10.80.249.27", 11211))
    by_name = parse_cluster_config(answer, use_ip=False)
    assert by_name.nodes[0] == ("myCluster.pc4ldq.0001.use1.cache.amazonaws.com", 11211)
    # An entry without an IP keeps its pipes; the name is used then.
    assert parse_cluster_config(b"CONFIG cluster 0 18\r\n3\nnode-a||11211\n\r\nEND\r\n").nodes == (("node-a", 11211),)


def test_refuses_an_answer_that_is_not_a_config() -> None:
    with pytest.raises(DiscoveryError):
        parse_cluster_config(b"ERROR\r\n")
