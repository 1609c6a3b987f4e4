"""The composition root: builds every part of the server once and passes each its dependencies."""

from __future__ import annotations

import asyncio
import configparser
import functools
import io
import json
import logging
import os
import secrets
import signal
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from cachefleet import serving
from cachefleet.api.app import build_app
from cachefleet.api.context import Context
from cachefleet.api.gatekeeper import Gatekeeper
from cachefleet.api.redis_iam import RedisIamEndpoint, ServerCertificate, TokenChecker
from cachefleet.control import kinds
from cachefleet.control.actions import ResourceKey
from cachefleet.control.execute import Executor, Tools
from cachefleet.control.exits import ExitWatch
from cachefleet.control.follow import Followers
from cachefleet.control.hosts import Drivers
from cachefleet.control.kinds.base import Follow, Services, unfollowed
from cachefleet.control.loop import Reconciler
from cachefleet.control.observe import ENDPOINT_INPUTS, PARAMETERS_FILE, EngineProbes, Observer
from cachefleet.control.proxy import EndpointProxy
from cachefleet.control.queue import KeyedQueue
from cachefleet.control.scheduler import SnapshotScheduler
from cachefleet.control.security import TLS_INFO, Keys, Links, iam_users_key
from cachefleet.control.sentinel_watch import SentinelWatch
from cachefleet.control.snapshots import SEED_MARKER, SnapshotWorker
from cachefleet.engines import acl
from cachefleet.engines.installed import MissingBinary, discover, find_binary, require_binaries
from cachefleet.hosts.agent_host import AgentHost
from cachefleet.hosts.embedded import EmbeddedHost
from cachefleet.hosts.local import LocalHost
from cachefleet.hosts.remote import RemoteHost, client_context
from cachefleet.model.credentials import Credentials
from cachefleet.model.hosts import LOCAL_HOST, HostSpec
from cachefleet.model.iam import ACCESS_KEY_PREFIX, new_id, new_secret
from cachefleet.model.ratelimit import TokenBuckets
from cachefleet.settings import Settings
from cachefleet.store.audit import AuditLog
from cachefleet.store.hosts import local_spec
from cachefleet.store.iam import AccessKey, IdentityStore, holds_sealed_secrets
from cachefleet.store.keys import InstallationKey, Keyring, KmsKeys, MissingInstallationKey, Sealer
from cachefleet.store.sealed import SealedBuckets, SealedSnapshotFiles
from cachefleet.store.snapshots import LocalBuckets, LocalSnapshotFiles
from cachefleet.store.sqlite import Store
from cachefleet.tls import certs
from cachefleet.tls import files as tls_files
from cachefleet.tls.certs import Identity, Role

log = logging.getLogger(__name__)

PROFILE = "cachefleet"
ADMIN_USER = "cachefleet-admin"
# A file holding an ISO-8601 time that the snapshot scheduler takes for "now" (tests move it forward
# to reach a SnapshotWindow); read here only, never by the API. Without it, the real clock.
SCHEDULER_CLOCK_ENV = "CACHEFLEET_SCHEDULER_CLOCK_FILE"
# "off": no subscriber to Sentinel's events, so that role changes are found by the periodic resync
# alone (a test shows that it heals what an event would have woken). Read here only.
SENTINEL_EVENTS_ENV = "CACHEFLEET_SENTINEL_EVENTS"
# "off": every Multi-AZ group runs three Sentinels of its own, as versions before the shared ones
# did (and a group moved to the shared ones stays there). For comparisons and upgrade tests.
SHARED_SENTINELS_ENV = "CACHEFLEET_SHARED_SENTINELS"


def utcnow() -> datetime:
    return datetime.now(UTC)


def file_clock(path: Path) -> datetime:
    """The time written in ``path`` (ISO 8601, UTC if it names no zone), else the real time."""
    try:
        when = datetime.fromisoformat(path.read_text().strip())
    except (OSError, ValueError):
        return utcnow()
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def scheduler_clock() -> Callable[[], datetime]:
    path = os.environ.get(SCHEDULER_CLOCK_ENV)
    if not path:
        return utcnow
    log.warning("the snapshot scheduler reads its time from %s (%s)", path, SCHEDULER_CLOCK_ENV)
    return functools.partial(file_clock, Path(path))


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _write_private(path: Path, text: str) -> None:
    """Write a secret-bearing file that is never readable by others, not even for an instant."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ApiSecurity:
    """The keys, identities and gate of one installation (``DIR/keys``, IAM tables of ``state.db``)."""

    keyring: Keyring
    kms: KmsKeys
    identities: IdentityStore
    gatekeeper: Gatekeeper
    sealer: Sealer  # secrets given back plain later (a Memcached AuthToken), by the installation key


def build_api_security(settings: Settings, store: Store, clock: Callable[[], datetime]) -> ApiSecurity:
    """Load (or, on first start, make) the installation key and everything it protects.

    A data dir whose database holds sealed secrets but whose key file is gone does not start: a new
    key could open none of them, and making one would hide the loss.
    """
    db = settings.data_dir / "state.db"
    try:
        installation = InstallationKey.load(settings.keys_path, create=not holds_sealed_secrets(db))
    except MissingInstallationKey as exc:
        raise SystemExit(f"cachefleet: {exc}") from None
    kms = KmsKeys(settings.keys_path, installation, settings.region, settings.account_id)
    kms.ensure_default(clock())
    identities = IdentityStore(db, installation, settings.account_id)
    buckets = (
        TokenBuckets(settings.api_rate, settings.api_burst, time.monotonic) if settings.api_rate > 0 else None
    )
    gatekeeper = Gatekeeper(
        identities=identities,
        store=store,
        region=settings.region,
        account=settings.account_id,
        clock=clock,
        buckets=buckets,
        audit=AuditLog(settings.audit_path, max_bytes=settings.audit_max_bytes, backups=settings.audit_backups),
    )
    return ApiSecurity(Keyring(installation, kms), kms, identities, gatekeeper, Sealer(installation))


def ensure_credentials(identities: IdentityStore, data_dir: Path, clock: Callable[[], datetime]) -> tuple[str, str]:
    """The root identity's access key, written to ``DIR/credentials`` (profile cachefleet).

    Its secret is kept sealed in ``state.db``; the credentials file is the user's own copy. A data
    dir from before IAM had the admin key in plain text there: it is sealed and the plain copy wiped.
    """
    found = identities.root_key() or identities.adopt_legacy_admin_key(clock())
    if found is None:
        key_id = new_id(ACCESS_KEY_PREFIX, _random)
        secret = new_secret(_random)
        identities.add_access_key(AccessKey(key_id, None, "Active", clock()), secret)
        found = key_id, secret
    key_id, secret = found
    ini = configparser.ConfigParser()
    ini[PROFILE] = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    text = io.StringIO()
    ini.write(text)
    _write_private(data_dir / "credentials", text.getvalue())
    return key_id, secret


def security_keys(store: Store, data_dir: Path, authority: certs.Authority, validity: tls_files.Validity) -> Keys:
    """The product's own users and the Sentinels' password (made once, kept in the store: they never
    come from a customer), with the CA that issues every process's certificate."""

    def made() -> str:
        return secrets.token_hex(24)

    internal = acl.InternalUsers(
        replication=Credentials(acl.REPLICATION_USER, store.secret("node_replication_password", made)),
        sentinel=Credentials(acl.SENTINEL_USER, store.secret("node_sentinel_password", made)),
        check=Credentials(acl.CHECK_USER, store.secret("node_check_password", made)),
    )
    return Keys(
        internal=internal,
        sentinel_password=store.secret("sentinel_password", made),
        ca_file=tls_files.ca_path(data_dir),
        authority=authority,
        leaf_validity=validity.leaf,
    )


def _tools() -> Tools:
    """Sentinel and HAProxy come from Debian's packages; a missing one is a set-up error, said at start.

    Found on PATH or in the system directories (Debian puts haproxy in /usr/sbin, off a user's PATH).
    """
    try:
        found = require_binaries("redis-sentinel", "haproxy")
    except MissingBinary as exc:
        raise SystemExit(f"cachefleet: {exc}") from exc
    return Tools(sentinel=found["redis-sentinel"], haproxy=found["haproxy"], python=sys.executable)


def _agent_certificate(
    authority: certs.Authority, validity: tls_files.Validity, request: str, host_id: str, address: str
) -> tuple[str, str]:
    """A host agent's certificate (role agent: it serves the control plane, naming its address) for
    the key of ``request``, and the CA certificate: the bundle ``cachefleet host add`` writes."""
    identity = Identity(f"cachefleet agent {host_id}", Role.AGENT, ips=(address,))
    issued = certs.sign_request(authority, request.encode(), identity, utcnow(), validity.leaf)
    return issued.decode(), authority.certificate_pem().decode()


def _agent(tls: ssl.SSLContext, spec: HostSpec) -> AgentHost:
    """The driver of a registered host: its agent, over HTTPS with the control plane's certificate."""
    remote = RemoteHost(
        f"https://{spec.address}:{spec.agent_port}",
        tls,
        # The control plane's own small files, which no process rewrites: answered from the cache.
        cached_files=(PARAMETERS_FILE, ENDPOINT_INPUTS, SEED_MARKER, TLS_INFO),
    )
    return AgentHost(remote, spec.id, spec.address)


def _sentinel_events(queue: KeyedQueue[ResourceKey], links: Links, keys: Keys) -> Follow:
    """What wakes a group on its Sentinels' events (``control.sentinel_watch``), unless turned off."""
    if os.environ.get(SENTINEL_EVENTS_ENV, "").lower() == "off":
        log.warning("Sentinel events are not followed (%s=off): role changes wait for the resync", SENTINEL_EVENTS_ENV)
        return unfollowed
    return SentinelWatch(queue.put, links, keys.sentinel_password).follow


def _shared_sentinels() -> bool:
    """Whether new groups join the embedded host's shared Sentinels (``HostMap.shared_sentinels``)."""
    if os.environ.get(SHARED_SENTINELS_ENV, "").lower() == "off":
        log.warning(
            "Sentinels are not shared (%s=off): each Multi-AZ group runs three of its own", SHARED_SENTINELS_ENV
        )
        return False
    return True


def _rdb_checker() -> str | None:
    """``redis-check-rdb`` (or Valkey's), run on imported files before a restore, if installed."""
    return find_binary("redis-check-rdb") or find_binary("valkey-check-rdb")


def build(
    settings: Settings,
) -> tuple[Context, Reconciler, Store, SnapshotScheduler, RedisIamEndpoint, Followers]:
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store(data_dir / "state.db")
    os.chmod(data_dir / "state.db", 0o600)
    api_security = build_api_security(settings, store, utcnow)
    root_key_id, _ = ensure_credentials(api_security.identities, data_dir, utcnow)
    # The installation's CA (DIR/ca.pem, key in DIR/tls/), made once, so `cachefleet ca` has it to show.
    validity = tls_files.Validity(leaf=settings.tls_certificate_validity)
    authority = tls_files.ensure_authority(data_dir, utcnow(), validity)
    # What the control plane shows the host agents (renewed when due, at each start).
    control_plane = Identity(certs.CONTROL_PLANE_NAME, Role.CONTROL_PLANE)
    tls_files.renew(tls_files.control_plane_path(data_dir), control_plane, authority, utcnow(), validity)
    sealer = api_security.sealer
    engines = discover()
    local = LocalHost(data_dir / "nodes", settings.port_range, settings.node_host)
    agents_tls = client_context(tls_files.ca_path(data_dir), tls_files.control_plane_path(data_dir))
    embedded = EmbeddedHost(local, LOCAL_HOST, settings.node_host)
    drivers = Drivers(store, embedded, functools.partial(_agent, agents_tls))
    credentials = Credentials(ADMIN_USER, store.secret("node_admin_password", lambda: secrets.token_hex(24)))
    keys = security_keys(store, data_dir, authority, validity)
    links = Links(keys.client_tls)
    # Snapshots, copies and exports are sealed with the installation's keys (docs/api-security.md).
    exports = SealedBuckets(LocalBuckets(settings.exports_path), api_security.keyring)
    snapshots = SnapshotWorker(
        store=store,
        hosts=drivers,
        files=SealedSnapshotFiles(LocalSnapshotFiles(settings.snapshots_path), api_security.keyring),
        exports=exports,
        imports=SealedBuckets(LocalBuckets(settings.imports_path), api_security.keyring),
        credentials=credentials,
        local_address=settings.node_host,
        clock=utcnow,
        rdb_checker=_rdb_checker(),
        links=links,
    )
    queue: KeyedQueue[ResourceKey] = KeyedQueue()
    tools = _tools()
    # Health checks log in as the check user (PING, INFO), never as the admin.
    proxy = EndpointProxy(
        drivers, tools.haproxy, keys.internal.check, keys.ca_file, size=settings.endpoint_proxy_size
    )
    executor = Executor(
        store=store,
        hosts=drivers,
        engines=engines,
        credentials=credentials,
        tools=tools,
        keys=keys,
        links=links,
        clock=utcnow,
        down_after_ms=settings.sentinel_down_after_ms,
        seed=snapshots.seed,
        sealer=sealer,
        proxy=proxy,
        wake=queue.put,
    )
    probes = EngineProbes(links, keys.sentinel_password)
    followers = Followers(store, drivers, credentials, keys.sentinel_password, queue.put)
    observer = Observer(
        hosts=drivers,
        probes=probes,
        credentials=credentials,
        ca_file=keys.ca_file,
        followed=followers.primary,
        endpoint_pending=executor.endpoint_pending,
    )
    local_host = local_spec(settings.node_host, settings.azs)
    exits = ExitWatch(queue.put)
    services = Services(
        store=store,
        observer=observer,
        clock=utcnow,
        wake=queue.put,
        local_host=local_host,
        watch=exits.watch,
        follow=_sentinel_events(queue, links, keys),
        shared_sentinels=_shared_sentinels(),
        shared_set_size=settings.sentinel_set_size,
    )
    reconciler = Reconciler(
        store=store,
        executor=executor,
        kinds=kinds.standard(services, snapshots, drivers, lost_after=settings.host_lost_after),
        queue=queue,
        clock=utcnow,
        resync_interval=settings.resync_interval,
    )
    store.subscribe(reconciler.notify)
    scheduler = SnapshotScheduler(store, schedule_clock=scheduler_clock(), clock=utcnow)
    ctx = Context(
        store=store,
        settings=settings,
        engines=engines,
        clock=utcnow,
        exports=exports,
        root_key_id=root_key_id,
        issue_agent_certificate=functools.partial(_agent_certificate, authority, validity),
        gatekeeper=api_security.gatekeeper,
        identities=api_security.identities,
        kms=api_security.kms,
        sealer=sealer,
    )
    # IAM authentication for Redis: a proxy only IAM clients use (docs/decisions.md), with the same
    # identities and policies as the API, and the secret IAM users' ACL passwords derive from.
    checker = TokenChecker(
        gatekeeper=api_security.gatekeeper,
        store=store,
        node_host=settings.node_host,
        users_key=iam_users_key(store),
        clock=utcnow,
    )
    certificate = ServerCertificate(
        data_dir / "tls" / "redis-iam.pem", authority, settings.redis_iam_host, validity.leaf, utcnow
    )
    redis_iam = RedisIamEndpoint(
        checker=checker,
        certificate=certificate,
        upstream_tls=keys.client_tls,
        lifetime=settings.redis_iam_connection_lifetime,
    )
    return ctx, reconciler, store, scheduler, redis_iam, followers


async def serve(settings: Settings) -> None:
    ctx, reconciler, store, scheduler, redis_iam, followers = build(settings)
    listener = serving.listen(settings.listen_host, settings.listen_port)
    host, port = listener.getsockname()[:2]
    iam_server = await redis_iam.start(settings.redis_iam_host, settings.redis_iam_port)
    iam_host, iam_port = iam_server.sockets[0].getsockname()[:2]
    config = uvicorn.Config(build_app(ctx), log_level="warning", access_log=False, lifespan="off")
    server = serving.Server(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.request_exit)
    reconciling = asyncio.create_task(reconciler.run())
    scheduling = asyncio.create_task(scheduler.run())
    following = asyncio.create_task(followers.run())
    endpoint = f"http://{host}:{port}"
    described = {"endpoint_url": endpoint, "region": settings.region, "redis_iam_endpoint": f"{iam_host}:{iam_port}"}
    server_json = json.dumps(described, indent=2) + "\n"
    # Atomically, like the credentials: clients poll for this file and must never read half of it.
    _write_private(settings.data_dir / "server.json", server_json)
    log.info("cachefleet serving %s (data in %s)", endpoint, settings.data_dir)
    try:
        # SIGINT/SIGTERM end serving; node processes run in their own sessions and keep serving.
        await server.serve(sockets=[listener])
    finally:
        reconciling.cancel()
        scheduling.cancel()
        following.cancel()
        await asyncio.gather(reconciling, scheduling, following, return_exceptions=True)
        listener.close()
        iam_server.close()
        store.close()


def run_server(settings: Settings) -> None:
    serving.run(lambda: serve(settings))
