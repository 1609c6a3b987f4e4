"""TestFailover: the API records the request; the reconciler asks Sentinel to carry it out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from cachefleet.api import inputs
from cachefleet.api.context import Context
from cachefleet.api.handlers.replication_groups import render
from cachefleet.model import lifecycle
from cachefleet.model.errors import (
    APICallRateForCustomerExceeded,
    InvalidReplicationGroupState,
    NodeGroupNotFound,
)
from cachefleet.store.records import GROUP, get_group

# ElastiCache's documented limit: at most 15 node groups tested in any rolling 24 hours.
MAX_TESTS_PER_DAY = 15
REQUESTED = "Test Failover API called for node group"


TEST_FAILOVER_INPUTS = inputs.Inputs(inputs.implemented("ReplicationGroupId", "NodeGroupId"))


async def test_failover(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(ctx.store, params["ReplicationGroupId"])
    node_group = params["NodeGroupId"]
    if not node_group.isdigit() or node_group.zfill(4) != "0001":
        raise NodeGroupNotFound(f"Node group {node_group} not found in replication group {group.spec.id}.")
    if not group.spec.automatic_failover:
        raise InvalidReplicationGroupState(
            f"Replication group {group.spec.id} does not have automatic failover enabled."
        )
    lifecycle.require(GROUP, "TestFailover", group.spec.id, group.status.status)
    now = ctx.clock()
    # The last day's requests only (an index finds the day), whatever the history holds.
    last_day = ctx.store.recent_events(start=now - timedelta(days=1), message_prefix=REQUESTED)
    recent = [e for e in last_day if now - e.date < timedelta(days=1)]
    if len(recent) >= MAX_TESTS_PER_DAY:
        raise APICallRateForCustomerExceeded(
            f"TestFailover may be called for at most {MAX_TESTS_PER_DAY} node groups in 24 hours."
        )
    spec = replace(group.spec, failover_requests=group.spec.failover_requests + 1)
    with ctx.store.transaction():
        ctx.store.put_spec(GROUP, spec.id, spec.to_json())
        ctx.store.add_event(spec.id, GROUP, f"{REQUESTED} 0001", now)
    # ElastiCache answers with the group still available while the failover runs.
    return {"ReplicationGroup": render(ctx, get_group(ctx.store, spec.id))}
