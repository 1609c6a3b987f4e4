"""What policy evaluation costs: DescribeReplicationGroups as the root identity and as an IAM user
with a 20-statement policy, side by side against one real server.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/api.py --trials 9 --calls 1000 [--json]

The server runs with its throttle raised out of the way (``--api-rate``): a sequential client is
faster than the default 200 calls/s, and a throttled call would measure the backoff, not the
evaluation. The token bucket itself still runs for both sides. Each trial makes ``--calls``
sequential calls with one side's boto3 client, then the same with the other (the order alternates
between trials so that machine noise lands on both alike), and records the median latency of a call
and the server's CPU per call (from /proc, user + system). The user's policy is a customer managed
policy of 20 statements, the one that allows ``elasticache:Describe*`` last and with conditions, so
every statement is evaluated on every call. The target is a ratio (user / root) of 1.05 or less,
for latency and for server CPU. The run exits 0 whether or not it is met: it is a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.config import Config
from tests.support.server import ServerProcess

from bench._common import ratio_summary, unwind_on_sigterm, wait_for

TARGET_RATIO = 1.05
ACCOUNT = "000000000000"
ARN = f"arn:aws:elasticache:*:{ACCOUNT}"
_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def policy_document() -> dict[str, Any]:
    """20 statements of the kinds people write; the one that allows the call comes last."""
    statements: list[dict[str, Any]] = []
    for team in ("web", "orders", "search", "billing", "auth", "media"):
        statements.append(
            {
                "Sid": f"Manage{team.capitalize()}",
                "Effect": "Allow",
                "Action": ["elasticache:Create*", "elasticache:Modify*", "elasticache:Reboot*"],
                "Resource": [f"{ARN}:replicationgroup:{team}-*", f"{ARN}:cluster:{team}-*"],
                "Condition": {"StringEquals": {"aws:RequestTag/team": team}},
            }
        )
        statements.append(
            {
                "Sid": f"Snapshot{team.capitalize()}",
                "Effect": "Allow",
                "Action": ["elasticache:CreateSnapshot", "elasticache:CopySnapshot"],
                "Resource": [f"{ARN}:snapshot:{team}-*", f"{ARN}:replicationgroup:{team}-*"],
            }
        )
    statements += [
        {"Sid": "NoProdDeletes", "Effect": "Deny", "Action": "elasticache:Delete*", "Resource": f"{ARN}:*:prod-*"},
        {
            "Sid": "NoUntaggedCreates",
            "Effect": "Deny",
            "Action": "elasticache:Create*",
            "Resource": "*",
            "Condition": {"Null": {"aws:RequestTag/team": "true"}},
        },
        {
            "Sid": "ParameterGroups",
            "Effect": "Allow",
            "Action": "elasticache:*CacheParameterGroup",
            "Resource": f"{ARN}:parametergroup:team-*",
        },
        {
            "Sid": "OwnUser",
            "Effect": "Allow",
            "Action": ["iam:GetUser", "iam:ListAccessKeys"],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        },
        {
            "Sid": "TagsOfOwnResources",
            "Effect": "Allow",
            "Action": ["elasticache:AddTagsToResource", "elasticache:RemoveTagsFromResource"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}},
        },
        {
            "Sid": "NoFailoverOutsideHours",
            "Effect": "Deny",
            "Action": "elasticache:TestFailover",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}},
        },
        {
            "Sid": "Read",
            "Effect": "Allow",
            "Action": ["elasticache:Describe*", "elasticache:List*"],
            "Resource": "*",
            "Condition": {
                "IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "10.0.0.0/8"]},
                "Bool": {"aws:SecureTransport": "false"},
            },
        },
        {"Sid": "Identity", "Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
    ]
    assert len(statements) == 20
    return {"Version": "2012-10-17", "Statement": statements}


def _process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK


@dataclass(frozen=True)
class Side:
    latency: float  # median seconds per call
    cpu: float  # server CPU seconds per call


def measure(client: Any, pid: int, calls: int) -> Side:
    latencies = []
    cpu_before = _process_cpu(pid)
    for _ in range(calls):
        started = time.perf_counter()
        client.describe_replication_groups()
        latencies.append(time.perf_counter() - started)
    return Side(statistics.median(latencies), (_process_cpu(pid) - cpu_before) / calls)


def run(trials: int, calls: int, groups: int) -> tuple[list[Side], list[Side]]:
    root_sides: list[Side] = []
    user_sides: list[Side] = []
    with tempfile.TemporaryDirectory(prefix="cf-bench-api-") as tmp:
        server = ServerProcess(Path(tmp) / "cf", "--api-rate", "1000000", "--api-burst", "1000000")
        try:
            server.start()
            assert server.process is not None
            pid = server.process.pid
            config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)
            root = server.client(config=config)
            iam = server.client("iam", config=config)
            for index in range(groups):
                root.create_replication_group(
                    ReplicationGroupId=f"web-{index}", ReplicationGroupDescription="bench",
                    CacheNodeType="cache.t4g.micro", NumCacheClusters=1,
                )  # fmt: skip
            for index in range(groups):
                root.get_waiter("replication_group_available").wait(
                    ReplicationGroupId=f"web-{index}", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
                )
            arn = iam.create_policy(PolicyName="bench-20", PolicyDocument=json.dumps(policy_document()))["Policy"][
                "Arn"
            ]
            iam.create_user(UserName="bench")
            iam.attach_user_policy(UserName="bench", PolicyArn=arn)
            made = iam.create_access_key(UserName="bench")["AccessKey"]
            user = server.client(
                aws_access_key_id=made["AccessKeyId"], aws_secret_access_key=made["SecretAccessKey"], config=config
            )
            wait_for(lambda: len(user.describe_replication_groups()["ReplicationGroups"]) == groups, "user access")
            measure(root, pid, calls // 5)  # warm both sides (connections, caches) before timing
            measure(user, pid, calls // 5)
            for trial in range(1, trials + 1):
                order = [("root", root), ("user", user)]
                if trial % 2 == 0:
                    order.reverse()
                for name, client in order:
                    side = measure(client, pid, calls)
                    (root_sides if name == "root" else user_sides).append(side)
                print(
                    f"trial {trial}/{trials}: root {root_sides[-1].latency * 1e3:.3f} ms "
                    f"{root_sides[-1].cpu * 1e3:.3f} ms CPU | user {user_sides[-1].latency * 1e3:.3f} ms "
                    f"{user_sides[-1].cpu * 1e3:.3f} ms CPU",
                    file=sys.stderr,
                )
        except BaseException:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.cleanup()
    return root_sides, user_sides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=9, help="trials per side (default 9)")
    parser.add_argument("--calls", type=int, default=1000, help="calls per side per trial (default 1000)")
    parser.add_argument("--groups", type=int, default=2, help="replication groups described (default 2)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.calls < 5 or args.groups < 0:
        parser.error("--trials must be at least 1, --calls at least 5, --groups at least 0")
    unwind_on_sigterm()
    root, user = run(args.trials, args.calls, args.groups)
    latency = ratio_summary({"user": [s.latency for s in user], "root": [s.latency for s in root]}, TARGET_RATIO)
    cpu = ratio_summary({"user": [s.cpu for s in user], "root": [s.cpu for s in root]}, TARGET_RATIO)
    print(f"DescribeReplicationGroups ({args.groups} groups), {args.trials} trials x {args.calls} calls per side\n")
    print(f"{'':28}{'root':>12}{'user (20 statements)':>24}{'ratio':>10}")
    print(
        f"{'median latency per call':28}{latency['root_median_s'] * 1e3:>10.3f}ms"
        f"{latency['user_median_s'] * 1e3:>22.3f}ms{latency['ratio']:>10.3f}"
    )
    print(
        f"{'server CPU per call':28}{cpu['root_median_s'] * 1e3:>10.3f}ms"
        f"{cpu['user_median_s'] * 1e3:>22.3f}ms{cpu['ratio']:>10.3f}"
    )
    print(f"target: ratio <= {TARGET_RATIO} for both; met: latency {latency['target_met']}, CPU {cpu['target_met']}")
    if args.json:
        print(json.dumps({"groups": args.groups, "calls": args.calls, "latency": latency, "cpu": cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
