"""``cachefleet server``: run the control plane in the foreground (docs/architecture.md section 11)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

import click

from cachefleet.cli.context import CliState, pass_state
from cachefleet.cli.options import data_dir_option, parse_csv, region_option
from cachefleet.settings import (
    DEFAULT_ACCOUNT,
    DEFAULT_API_BURST,
    DEFAULT_API_RATE,
    DEFAULT_LISTEN,
    DEFAULT_PORT_RANGE,
    Settings,
)


def parse_listen(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return value


def parse_port_range(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    low, sep, high = value.partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) <= 65535):
        raise click.BadParameter(f"expected LO-HI with 1 <= LO <= HI <= 65535, got {value!r}")
    return int(low), int(high)


def parse_address(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise click.BadParameter(f"expected an IP address, got {value!r}") from None
    if address.version != 4 or address.is_unspecified:
        raise click.BadParameter(f"expected an IPv4 address nodes can bind to, got {value!r}")
    return str(address)


def parse_account_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # ARNs carry it, and AWS tools expect exactly twelve digits there.
    if value is not None and not (len(value) == 12 and value.isdigit()):
        raise click.BadParameter(f"expected 12 digits, got {value!r}")
    return value


@click.command("server")
@data_dir_option
@click.option("--listen", callback=parse_listen, metavar="HOST:PORT", help=f"API address [default: {DEFAULT_LISTEN}].")
@region_option
@click.option("--account-id", callback=parse_account_id, help=f"Account id in ARNs [default: {DEFAULT_ACCOUNT}].")
@click.option("--azs", callback=parse_csv, metavar="AZ,AZ,...", help="Availability zones [default: REGION + a, b, c].")
@click.option(
    "--port-range",
    callback=parse_port_range,
    metavar="LO-HI",
    help="Ports for nodes [default: {}-{}].".format(*DEFAULT_PORT_RANGE),
)
@click.option(
    "--node-address",
    callback=parse_address,
    metavar="ADDR",
    help="This machine's address for the nodes it runs (the embedded host) [default: 127.0.0.1].",
)
@click.option(
    "--host-lost-after",
    type=click.FloatRange(min=1.0),
    metavar="SECONDS",
    help="How long a registered host may not answer before its nodes are replaced elsewhere [default: 30].",
)
@click.option(
    "--api-rate",
    type=click.FloatRange(min=0),
    help=f"API calls per second per access key before Throttling; 0: no throttling [default: {DEFAULT_API_RATE:g}].",
)
@click.option(
    "--api-burst", type=click.IntRange(min=1), help=f"API calls at once per access key [default: {DEFAULT_API_BURST}]."
)
@click.option(
    "--tls-certificate-validity",
    type=click.IntRange(min=10),
    metavar="SECONDS",
    help="How long the certificates of nodes and Sentinels live; renewed with a third left [default: 1 year].",
)
@click.option(
    "--resync-interval",
    type=click.FloatRange(min=0.1, max=3600),
    metavar="SECONDS",
    help="How often every resource is looked at again unasked, spread over the interval: a safety net, since "
    "a process exit or a Sentinel event wakes its resource at once [default: 60].",
)
@click.option(
    "--sentinel-set-size",
    type=click.IntRange(min=1),
    metavar="GROUPS",
    help="How many Multi-AZ groups one set of three shared Sentinels watches before the next set starts [default: 25].",
)
@click.option(
    "--endpoint-proxy-size",
    type=click.IntRange(min=1),
    metavar="GROUPS",
    help="How many groups' endpoints one HAProxy serves before the next one starts [default: 25].",
)
@click.option(
    "--redis-iam-listen",
    callback=parse_listen,
    metavar="HOST:PORT",
    help="The IAM endpoint for Redis (IAM authentication tokens) [default: 127.0.0.1 and a free port, in server.json].",
)
@click.option(
    "--redis-iam-connection-lifetime",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="How long an IAM-authenticated Redis connection lives [default: 12 hours].",
)
@pass_state
def server(
    state: CliState,
    *,
    listen: str | None,
    account_id: str | None,
    azs: tuple[str, ...] | None,
    port_range: tuple[int, int] | None,
    node_address: str | None,
    host_lost_after: float | None,
    api_rate: float | None,
    api_burst: int | None,
    tls_certificate_validity: int | None,
    resync_interval: float | None,
    sentinel_set_size: int | None,
    endpoint_proxy_size: int | None,
    redis_iam_listen: str | None,
    redis_iam_connection_lifetime: int | None,
) -> None:
    """Run the control plane in the foreground; node processes outlive it."""
    settings = build_settings(
        data_dir=state.data_dir,
        listen=listen,
        region=state.region,
        account_id=account_id,
        azs=azs,
        port_range=port_range,
        node_address=node_address,
        host_lost_after=host_lost_after,
        api_rate=api_rate,
        api_burst=api_burst,
        tls_certificate_validity=tls_certificate_validity,
        resync_interval=resync_interval,
        sentinel_set_size=sentinel_set_size,
        endpoint_proxy_size=endpoint_proxy_size,
        redis_iam_listen=redis_iam_listen,
        redis_iam_connection_lifetime=redis_iam_connection_lifetime,
    )
    # Imported here so that the API verbs do not pay for loading the whole server.
    from cachefleet.wiring import run_server  # noqa: PLC0415

    run_server(settings)


def build_settings(
    *,
    data_dir: Path | None,
    listen: str | None,
    region: str | None,
    account_id: str | None,
    azs: tuple[str, ...] | None,
    port_range: tuple[int, int] | None,
    node_address: str | None = None,
    host_lost_after: float | None = None,
    api_rate: float | None = None,
    api_burst: int | None = None,
    tls_certificate_validity: int | None = None,
    resync_interval: float | None = None,
    sentinel_set_size: int | None = None,
    endpoint_proxy_size: int | None = None,
    redis_iam_listen: str | None = None,
    redis_iam_connection_lifetime: int | None = None,
) -> Settings:
    """Settings from the flags given; a flag left out keeps the default that Settings defines."""
    given: dict[str, Any] = {
        "data_dir": data_dir,
        "listen": listen,
        "region": region,
        "account_id": account_id,
        "availability_zones": azs,
        "port_range": port_range,
        "node_host": node_address,
        "host_lost_after": host_lost_after,
        "api_rate": api_rate,
        "api_burst": api_burst,
        "tls_certificate_validity": (
            dt.timedelta(seconds=tls_certificate_validity) if tls_certificate_validity is not None else None
        ),
        "resync_interval": resync_interval,
        "sentinel_set_size": sentinel_set_size,
        "endpoint_proxy_size": endpoint_proxy_size,
        "redis_iam_listen": redis_iam_listen,
        "redis_iam_connection_lifetime": (
            dt.timedelta(seconds=redis_iam_connection_lifetime) if redis_iam_connection_lifetime is not None else None
        ),
    }
    return Settings(**{name: value for name, value in given.items() if value is not None})
