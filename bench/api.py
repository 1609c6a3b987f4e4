"""What policy evaluation costs: DescribeReplicationGroups as the root identity and as an IAM user
with a 20-statement policy, side by side against one real server.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/api.py --trials 9 --calls 1000 [--json]

The server runs with its throttle raised out of the way (``--api-rate``): a sequential client is
faster than the default 400 calls/s, and a throttled call would measure the backoff, not the
evaluation. The token bucket itself still runs for both sides. Each trial makes ``--calls``
sequential calls per side, in batches of ``--batch`` that alternate between the root's and the
user's boto3 client (on a shared machine, load comes and goes within seconds: interleaving lands it
on both sides alike). It records the median latency of a call and the server's CPU per call, read
with nanosecond resolution from /proc/<pid>/task/*/schedstat (every thread of the server) around
each batch. The user's policy is a customer managed
policy of 20 statements, the one that allows ``elasticache:Describe*`` last and with conditions, so
every statement is evaluated on every call. The target is a ratio (user / root) of 1.05 or less,
for latency and for server CPU. The run exits 0 whether or not it is met: it is a measurement.
"""

from __future__ import annotations

import argparse
import json
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
    """Seconds of CPU every thread of ``pid`` has run so far (schedstat: nanoseconds on a CPU)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9


@dataclass(frozen=True)
class Side:
    latency: float  # median seconds per call
    cpu: float  # server CPU seconds per call


class Tally:
    """One side's calls in a trial: every latency, and the server CPU its batches used."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.cpu = 0.0

    def batch(self, client: Any, pid: int, calls: int) -> None:
        before = _process_cpu(pid)
        for _ in range(calls):
            started = time.perf_counter()
            client.describe_replication_groups()
            self.latencies.append(time.perf_counter() - started)
        self.cpu += _process_cpu(pid) - before

    def side(self) -> Side:
        return Side(statistics.median(self.latencies), self.cpu / len(self.latencies))


def trial(root: Any, user: Any, pid: int, *, calls: int, batch: int, user_first: bool) -> tuple[Side, Side]:
    tallies = {"root": Tally(), "user": Tally()}
    order = [("user", user), ("root", root)] if user_first else [("root", root), ("user", user)]
    for _ in range(max(1, calls // batch)):
        for name, client in order:
            tallies[name].batch(client, pid, batch)
    return tallies["root"].side(), tallies["user"].side()


def run(trials: int, calls: int, batch: int, groups: int) -> tuple[list[Side], list[Side]]:
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
            trial(root, user, pid, calls=calls // 5, batch=batch, user_first=False)  # warm both sides before timing
            for number in range(1, trials + 1):
                root_side, user_side = trial(root, user, pid, calls=calls, batch=batch, user_first=number % 2 == 0)
                root_sides.append(root_side)
                user_sides.append(user_side)
                print(
                    f"trial {number}/{trials}: root {root_sides[-1].latency * 1e3:.3f} ms "
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
    parser.add_argument("--batch", type=int, default=20, help="calls in a row before the other side's (default 20)")
    parser.add_argument("--groups", type=int, default=2, help="replication groups described (default 2)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.calls < 5 or args.batch < 1 or args.groups < 0:
        parser.error("--trials and --batch must be at least 1, --calls at least 5, --groups at least 0")
    unwind_on_sigterm()
    root, user = run(args.trials, args.calls, args.batch, args.groups)
    # In milliseconds, so that ratio_summary's rounding (4 decimals) keeps the figures.
    latency = ratio_summary({"user": [s.latency * 1e3 for s in user], "root": [s.latency * 1e3 for s in root]},
                            TARGET_RATIO)  # fmt: skip
    cpu = ratio_summary({"user": [s.cpu * 1e3 for s in user], "root": [s.cpu * 1e3 for s in root]}, TARGET_RATIO)
    print(f"DescribeReplicationGroups ({args.groups} groups), {args.trials} trials x {args.calls} calls per side\n")
    print(f"{'':28}{'root':>12}{'user (20 statements)':>24}{'ratio':>10}")
    print(
        f"{'median latency per call':28}{latency['root_median_s']:>10.3f}ms"
        f"{latency['user_median_s']:>22.3f}ms{latency['ratio']:>10.3f}"
    )
    print(
        f"{'server CPU per call':28}{cpu['root_median_s']:>10.3f}ms{cpu['user_median_s']:>22.3f}ms{cpu['ratio']:>10.3f}"
    )
    # Each trial's own user/root ratio: both sides of a trial ran interleaved, under the same load.
    per_trial = {
        "latency": statistics.median(u.latency / r.latency for u, r in zip(user, root, strict=True)),
        "cpu": statistics.median(u.cpu / r.cpu for u, r in zip(user, root, strict=True)),
    }
    print(f"{'median of per-trial ratios':28}{'latency':>12}{per_trial['latency']:>24.3f}")
    print(f"{'':28}{'CPU':>12}{per_trial['cpu']:>24.3f}")
    print(f"target: ratio <= {TARGET_RATIO} for both; met: latency {latency['target_met']}, CPU {cpu['target_met']}")
    if args.json:
        # The *_s fields of these two summaries are milliseconds.
        summary = {"groups": args.groups, "calls": args.calls, "unit": "ms", "latency": latency, "cpu": cpu}
        print(json.dumps({**summary, "per_trial_ratio": {k: round(v, 3) for k, v in per_trial.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
