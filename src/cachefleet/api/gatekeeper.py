"""What the edge does around every handler: who is calling, may they, how often, and the audit trail.

For one request, in order: ``identify`` turns the access key that signed it into a ``Principal``
(an inactive or unknown key never gets this far: SigV4 verification found no secret for it);
``throttle`` spends a token of that key's bucket; ``authorize`` evaluates the caller's policies for
the call's action on each resource it names (the root identity is allowed everything, and STS
``GetCallerIdentity`` needs no permission); ``audit`` records every call that is not read-only,
allowed or refused, once it is answered.

The condition keys of a request are the global ones (``aws:username``, ``aws:userid``,
``aws:PrincipalArn``, ``aws:CurrentTime``, ``aws:EpochTime``, ``aws:SourceIp``,
``aws:RequestedRegion``, ``aws:SecureTransport``), those the call carries (``aws:RequestTag/...``,
``aws:TagKeys``, ``elasticache:...``, see ``model.authz``) and, per resource and only when a
policy asks, ``aws:ResourceTag/...`` read from the store.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachefleet.model import authz
from cachefleet.model.audit import audit_record
from cachefleet.model.errors import AccessDenied, CacheFleetError, InvalidARN, InvalidClientTokenId, Throttling
from cachefleet.model.iam import Principal
from cachefleet.model.ids import parse_arn
from cachefleet.model.patterns import RequestContext
from cachefleet.model.policy import denial_message
from cachefleet.model.ratelimit import TokenBuckets
from cachefleet.store.audit import AuditLog
from cachefleet.store.iam import IdentityStore
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

_TAG_PREFIX = "aws:resourcetag/"


@dataclass(frozen=True)
class Caller:
    """Who signed a request, and from where."""

    principal: Principal
    region: str
    source_ip: str
    user_agent: str = ""
    secure: bool = False


class Gatekeeper:
    def __init__(
        self,
        *,
        identities: IdentityStore,
        store: Store,
        region: str,
        account: str,
        clock: Callable[[], datetime],
        buckets: TokenBuckets | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.identities = identities
        self.store = store
        self.region = region
        self.account = account
        self.clock = clock
        self.buckets = buckets
        self.audit_log = audit

    # -- the steps -----------------------------------------------------------------------------

    def secret_for(self, access_key_id: str) -> str | None:
        """The secret SigV4 verification needs; None for an unknown or inactive key."""
        return self.identities.secret_for(access_key_id)

    def identify(self, access_key_id: str) -> Principal:
        found = self.identities.principal(access_key_id)
        if found is None:
            raise InvalidClientTokenId("The security token included in the request is invalid.")
        return found[0]

    def throttle(self, principal: Principal) -> None:
        if self.buckets is not None and not self.buckets.take(principal.access_key_id):
            raise Throttling("Rate exceeded")

    def authorization(
        self, service: str, operation: str, params: Mapping[str, Any], caller: Caller
    ) -> authz.Authorization:
        if service == authz.IAM:
            return authz.iam(operation, params, caller.principal, self._iam_path)
        if service == authz.STS:
            return authz.sts(operation)
        return authz.elasticache(operation, params, caller.region, self.account)

    def authorize(self, request: authz.Authorization, caller: Caller) -> None:
        """Nothing, or ``AccessDenied`` naming the identity, action and resource."""
        principal = caller.principal
        if principal.is_root or request.always_allowed:
            return  # no context to build
        base = self._context_values(request, caller)

        def context_for(resource: str) -> RequestContext:
            return RequestContext(base, lambda key: self._request_key(resource, key))

        verdict = authz.decide(principal, request, context_for)
        if not verdict.allowed:
            raise AccessDenied(denial_message(principal.arn, request.action, verdict))

    def audit(
        self,
        *,
        service: str,
        operation: str,
        caller: Caller | None,
        access_key_id: str | None,
        region: str,
        source_ip: str,
        user_agent: str,
        params: Mapping[str, Any],
        result: Mapping[str, Any] | None,
        error: CacheFleetError | None,
        request_id: str,
        resources: tuple[str, ...],
    ) -> None:
        """Record a call that changes something (whatever its outcome); read-only calls are not."""
        if self.audit_log is None or authz.read_only(operation):
            return
        record = audit_record(
            when=self.clock(),
            service=service,
            operation=operation,
            region=region,
            source_ip=source_ip,
            user_agent=user_agent,
            principal=caller.principal if caller else None,
            access_key_id=access_key_id,
            params=params,
            result=result,
            error=(error.code, error.message) if error is not None else None,
            request_id=request_id,
            event_id=str(uuid.uuid4()),
            resources=resources,
            account=self.account,
        )
        try:
            self.audit_log.append(record)
        except OSError:
            # The call is done; a full disk must not turn its answer into an error. Said loudly.
            log.exception("could not write the audit record of %s %s", operation, request_id)

    # -- condition keys ------------------------------------------------------------------------

    def _context_values(self, request: authz.Authorization, caller: Caller) -> dict[str, tuple[str, ...]]:
        # The caller's keys are lowercased once per identity (cached on it); the clock is read only
        # when a condition asks for the time (see _request_key).
        values = dict(caller.principal.context_keys)
        values["aws:sourceip"] = (caller.source_ip,)
        values["aws:requestedregion"] = (caller.region,)
        values["aws:securetransport"] = ("true" if caller.secure else "false",)
        for key, value in request.keys.items():
            values[key.lower()] = (value,) if isinstance(value, str) else tuple(value)
        return values

    def _request_key(self, resource: str, key: str) -> tuple[str, ...] | None:
        if key == "aws:currenttime":
            return (self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),)
        if key == "aws:epochtime":
            return (str(int(self.clock().timestamp())),)
        if not key.startswith(_TAG_PREFIX):
            return None
        tags = self._resource_tags(resource)
        wanted = key[len(_TAG_PREFIX) :]
        for tag_key, value in tags:
            if tag_key.lower() == wanted:
                return (value,)
        return None

    def _resource_tags(self, resource: str) -> tuple[tuple[str, str], ...]:
        if resource.startswith("arn:aws:iam::"):
            name = resource.rsplit("/", 1)[-1]
            user = self.identities.user(name) if ":user/" in resource else None
            return user.tags if user is not None else ()
        try:
            arn = parse_arn(resource)
        except InvalidARN:
            return ()
        record = self.store.get(arn.kind, arn.name)
        if record is None:
            return ()
        return tuple((str(k), str(v)) for k, v in record.spec.get("tags", ()))

    def _iam_path(self, kind: str, name: str) -> str | None:
        found = self.identities.user(name) if kind == "user" else self.identities.group(name)
        return found.path if found is not None else None
