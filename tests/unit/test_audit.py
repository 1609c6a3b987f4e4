"""Audit records (CloudTrail's shape, no secrets) and the rotated audit file, on real files."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cachefleet.model.audit import HIDDEN, audit_record, redact, response_elements
from cachefleet.model.iam import IAM_USER, Principal, root_principal
from cachefleet.store.audit import AuditLog, audit_files, follow, read_records

WHEN = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BOB = Principal(
    account="000000000000",
    kind=IAM_USER,
    arn="arn:aws:iam::000000000000:user/bob",
    user_id="AIDAEXAMPLE0000000001",
    access_key_id="AKIAEXAMPLE000000001",
    user_name="bob",
)


def record(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "when": WHEN,
        "service": "elasticache",
        "operation": "CreateReplicationGroup",
        "region": "us-east-1",
        "source_ip": "127.0.0.1",
        "user_agent": "Boto3/1.34",
        "principal": BOB,
        "access_key_id": BOB.access_key_id,
        "params": {"ReplicationGroupId": "orders", "AuthToken": "s3cr3t-t0ken-value"},
        "result": {"ReplicationGroup": {"ReplicationGroupId": "orders", "Status": "creating", "ARN": "arn:x"}},
        "error": None,
        "request_id": "req-1",
        "event_id": "evt-1",
        "resources": ["arn:aws:elasticache:us-east-1:000000000000:replicationgroup:orders"],
        "account": "000000000000",
    }
    fields.update(overrides)
    return audit_record(**fields)


def test_a_record_has_cloudtrails_fields() -> None:
    event = record()
    assert event["eventTime"] == "2026-03-01T12:00:00Z"
    assert event["eventSource"] == "elasticache.amazonaws.com"
    assert event["eventName"] == "CreateReplicationGroup"
    assert event["readOnly"] is False
    assert event["userIdentity"] == {
        "type": "IAMUser",
        "principalId": BOB.user_id,
        "arn": BOB.arn,
        "accountId": "000000000000",
        "accessKeyId": BOB.access_key_id,
        "userName": "bob",
    }
    assert event["requestParameters"] == {"replicationGroupId": "orders", "authToken": HIDDEN}
    assert event["responseElements"] == {
        "replicationGroup": {"replicationGroupId": "orders", "status": "creating", "aRN": "arn:x"}
    }
    assert event["resources"] == [{"ARN": "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:orders"}]
    assert "errorCode" not in event


def test_a_refused_call_records_the_error_and_no_answer() -> None:
    event = record(error=("AccessDenied", "User: ... is not authorized"), result=None)
    assert event["errorCode"] == "AccessDenied"
    assert event["errorMessage"].startswith("User:")
    assert event["responseElements"] is None


def test_root_and_unknown_callers() -> None:
    root = record(principal=root_principal("000000000000", "AKIAROOT000000000000"))
    assert root["userIdentity"]["type"] == "Root"
    assert root["userIdentity"]["arn"] == "arn:aws:iam::000000000000:root"
    assert "userName" not in root["userIdentity"]
    unknown = record(principal=None, access_key_id="AKIAGONE")
    assert unknown["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIAGONE"}


def test_secrets_are_hidden_at_any_depth_and_policies_are_kept() -> None:
    params = {
        "UserId": "app",
        "Passwords": ["first-password-123456", "second-password-12345"],
        "AuthenticationMode": {"Type": "password", "Passwords": ["x" * 20]},
        "PolicyDocument": '{"Statement": []}',
        "AccessString": "on >a-password-1234567 ~* #0123abcd +@all",
    }
    assert redact(params) == {
        "userId": "app",
        "passwords": HIDDEN,
        "authenticationMode": {"type": "password", "passwords": HIDDEN},
        "policyDocument": '{"Statement": []}',
        "accessString": f"on {HIDDEN} ~* {HIDDEN} +@all",
    }
    answer = {"AccessKey": {"AccessKeyId": "AKIA1", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG", "Status": "Active"}}
    elements = response_elements(answer)
    assert elements == {"accessKey": {"accessKeyId": "AKIA1", "status": "Active"}}
    assert "wJalr" not in json.dumps(record(result=answer))


def test_the_log_is_private_rotated_by_size_and_read_oldest_first(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit", max_bytes=2000, backups=2)
    for index in range(40):
        log.append(record(request_id=f"req-{index}"))
    files = audit_files(tmp_path / "audit")
    assert [p.name for p in files] == ["audit.log.2", "audit.log.1", "audit.log"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert stat.S_IMODE((tmp_path / "audit").stat().st_mode) == 0o700
    assert all(p.stat().st_size <= 2000 for p in files)
    ids = [r["requestID"] for r in read_records(tmp_path / "audit")]
    assert ids == sorted(ids, key=lambda i: int(i.split("-")[1]))  # in order, oldest dropped
    assert ids[-1] == "req-39"
    assert ids[0] != "req-0"


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)

    def write(worker: int) -> None:
        for index in range(100):
            log.append(record(request_id=f"{worker}-{index}"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(list(read_records(tmp_path))) == 400


class _Done(Exception):
    pass


def test_follow_sees_new_records_across_a_rotation(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, max_bytes=1500, backups=1)
    log.append(record(request_id="before"))
    seen: list[str] = []
    steps = iter(range(100))

    def tick(_: float) -> None:
        # Each time follow waits, the "server" writes the next record.
        step = next(steps)
        if step < 6:
            log.append(record(request_id=f"new-{step}"))
        else:
            raise _Done

    events = follow(tmp_path, sleep=tick)
    seen.extend(next(events)["requestID"] for _ in range(6))
    with pytest.raises(_Done):
        next(events)
    assert seen == [f"new-{i}" for i in range(6)]
