"""Parameter groups on running nodes: what to CONFIG SET, and what waits for a reboot.

Pure. ``immediate`` parameters are compared with what each Redis node reports (CONFIG GET) on every
pass and set where they differ, so replicas and nodes added later converge like the rest.
``requires-reboot`` ones are compared with what the node started with (the parameters file beside
its config): a difference is ``pending-reboot`` until the node restarts on a config rendered afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cachefleet.control.actions import ConfigSet, LiveParameters
from cachefleet.control.observe import NodeObservation
from cachefleet.engines import memcached, redis
from cachefleet.engines.nodetypes import memory_bytes
from cachefleet.model import parameters as pm
from cachefleet.model.nodes import NodeKey, Placement


@dataclass(frozen=True)
class Wanted:
    """What a cluster's parameter group asks of each of its nodes."""

    live: Mapping[str, str] = field(default_factory=dict)  # Redis directives CONFIG SET changes
    memcached_live: Mapping[str, str] = field(default_factory=dict)  # memcached settings changed live
    reboot: Mapping[str, str] = field(default_factory=dict)  # requires-reboot parameters' values
    reboot_defaults: Mapping[str, str] = field(default_factory=dict)  # for nodes started without a record


def wanted(
    engine: str, version: str, node_type: str, values: Mapping[str, str], *, memcached_live: bool = True
) -> Wanted:
    """``memcached_live`` False (nodes with SASL, which speak only the binary protocol and so take
    no live commands): memcached's live parameters wait for a reboot like the others."""
    family = pm.family_for(engine, version)
    reboot_names = set(pm.reboot_parameters(family))
    defaults = pm.defaults(family)
    live: dict[str, str] = {}
    live_memcached: dict[str, str] = {}
    if engine != "memcached" and values:
        live = redis.live_directives(redis.parameter_directives(values, memory_bytes(node_type) or 0))
    if engine == "memcached":
        names = set(memcached.LIVE_PARAMETERS)
        if memcached_live:
            live_memcached = {k: v for k, v in values.items() if k in names}
        else:
            reboot_names |= names
    return Wanted(
        live=live,
        memcached_live=live_memcached,
        reboot={k: v for k, v in values.items() if k in reboot_names},
        reboot_defaults={k: defaults[k] for k in reboot_names},
    )


@dataclass(frozen=True)
class NodeParameters:
    action: ConfigSet | LiveParameters | None
    status: str  # in-sync | applying | pending-reboot


def check_node(key: NodeKey, at: Placement | None, obs: NodeObservation, want: Wanted) -> NodeParameters:
    """``applying`` while live values are being set, else ``pending-reboot`` until a restart, else in-sync."""
    if obs.pid is None or at is None:
        return NodeParameters(None, pm.IN_SYNC)  # it starts on a config rendered from the group as it is
    started = obs.started_with if obs.started_with is not None else want.reboot_defaults
    info = obs.redis
    if info is not None and info.config is not None and not info.loading:
        differences = redis.config_differences(want.live, info.config)
        if differences:
            return NodeParameters(ConfigSet(key, at, tuple(sorted(differences.items()))), pm.APPLYING)
    if obs.memcached is not None and want.memcached_live:
        commands = memcached.live_commands(want.memcached_live, obs.memcached.settings)
        if commands:
            return NodeParameters(LiveParameters(key, at, commands), pm.APPLYING)
    if any(started.get(name, want.reboot_defaults.get(name)) != value for name, value in want.reboot.items()):
        return NodeParameters(None, pm.PENDING_REBOOT)
    return NodeParameters(None, pm.IN_SYNC)


def apply_status(node_statuses: Iterable[str]) -> str:
    """A cluster's ParameterApplyStatus: the least settled of its nodes'."""
    statuses = set(node_statuses)
    for status in (pm.APPLYING, pm.PENDING_REBOOT):
        if status in statuses:
            return status
    return pm.IN_SYNC


def events(previous: str, current: str, nodes: Mapping[str, str]) -> list[str]:
    """Messages about a cluster's parameters when its apply status moves (once per change)."""
    messages = []
    if previous == pm.APPLYING and current != pm.APPLYING:
        messages.append("Cache cluster parameters changed")
    if current == pm.PENDING_REBOOT and previous != pm.PENDING_REBOOT:
        ids = ", ".join(n for n, s in nodes.items() if s == pm.PENDING_REBOOT)
        messages.append(f"Parameter changes pending reboot for cache nodes {ids}")
    return messages
