"""What every API handler is given: passed in from the composition root, never global."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cachefleet.api.gatekeeper import Gatekeeper
from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.redis import command_catalog
from cachefleet.model.acl import CommandCatalog
from cachefleet.model.hosts import HostSpec
from cachefleet.model.iam import Principal
from cachefleet.model.ids import arn
from cachefleet.settings import Settings
from cachefleet.store.hosts import local_spec
from cachefleet.store.iam import IdentityStore
from cachefleet.store.keys import KmsKeys, Sealer
from cachefleet.store.snapshots import Buckets
from cachefleet.store.sqlite import Store


@dataclass(frozen=True)
class Context:
    store: Store
    settings: Settings
    engines: Sequence[EngineBinary]
    clock: Callable[[], datetime]
    # The export area (CopySnapshot TargetBucket): the API checks that a bucket exists, as S3 would.
    exports: Buckets | None = None
    # The commands and ACL categories of each installed engine (for access strings), asked of the
    # newest binary once, on first use (it starts a throwaway server for a moment).
    catalogs: dict[str, CommandCatalog | None] = field(default_factory=dict)
    # The account's root identity (the admin key of DIR/credentials): the only caller of the admin API.
    root_key_id: str | None = None
    # Issues a host agent's certificate from the installation's CA: (CSR PEM, host id, address) ->
    # (certificate PEM, CA certificate PEM). None: no CA, so no host can be added.
    issue_agent_certificate: Callable[[str, str, str], tuple[str, str]] | None = None
    # Identities, policies, throttling and audit (api/gatekeeper.py); None only in tests of handlers.
    gatekeeper: Gatekeeper | None = None
    identities: IdentityStore | None = None
    # The KMS keys this installation manages (KmsKeyId names one of them).
    kms: KmsKeys | None = None
    # Who signed the request being served; the edge gives each request a copy with it set.
    caller: Principal | None = None
    # Seals a Memcached cluster's AuthToken for its spec (``store.keys.Sealer``); None: such tokens are refused.
    sealer: Sealer | None = None

    def arn(self, kind: str, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, kind, name)

    async def catalog(self, engine: str) -> CommandCatalog | None:
        """``engine``'s catalogue; None (access strings then checked for their shape only) when no
        binary of it answers, which is logged."""
        if engine not in self.catalogs:
            binaries = sorted((e for e in self.engines if e.engine == engine), key=lambda e: e.version)
            found: CommandCatalog | None = None
            if binaries:
                try:
                    found = await asyncio.to_thread(command_catalog, binaries[-1].path)
                except (RuntimeError, OSError) as exc:
                    log.warning("cannot read the commands of %s: %s", binaries[-1].path, exc)
            self.catalogs[engine] = found
        return self.catalogs[engine]

    @property
    def local_host(self) -> HostSpec:
        """The embedded host, as the settings describe it (``store.hosts``)."""
        return local_spec(self.settings.node_host, self.settings.azs)


log = logging.getLogger(__name__)
