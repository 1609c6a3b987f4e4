"""Finding engine and tool binaries: PATH first, then the system directories; a missing one names its package."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cachefleet.engines.installed import (
    SYSTEM_DIRS,
    MissingBinary,
    find_binary,
    lookup_path,
    missing_message,
    require_binaries,
)

USER_PATH = "/usr/local/bin:/usr/bin:/bin"  # Debian's default PATH for a user: no sbin directory


def executable(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_a_binary_off_path_is_found_in_a_system_directory(tmp_path: Path) -> None:
    sbin = tmp_path / "sbin"
    tool = executable(sbin, "tool")

    assert shutil.which("tool", path=str(tmp_path / "bin")) is None
    assert find_binary("tool", path=str(tmp_path / "bin"), system_dirs=(str(sbin),)) == str(tool)


def test_path_comes_before_the_system_directories(tmp_path: Path) -> None:
    mine = executable(tmp_path / "mine", "tool")
    executable(tmp_path / "sbin", "tool")

    assert find_binary("tool", path=str(tmp_path / "mine"), system_dirs=(str(tmp_path / "sbin"),)) == str(mine)


def test_a_relative_path_entry_gives_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executable(tmp_path / "bin", "tool")
    monkeypatch.chdir(tmp_path)

    assert find_binary("tool", path="bin", system_dirs=()) == str(tmp_path / "bin" / "tool")


def test_lookup_path_appends_only_the_system_directories_path_lacks() -> None:
    assert lookup_path(USER_PATH).split(os.pathsep) == [
        "/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin",
    ]  # fmt: skip
    assert lookup_path("", system_dirs=("/a", "/b")) == "/a:/b"


def test_lookup_path_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/opt/x/bin")

    assert lookup_path().split(os.pathsep) == ["/opt/x/bin", *SYSTEM_DIRS]


def test_debians_haproxy_is_found_with_a_users_path() -> None:
    # The machine's own packages (scripts/setup.sh installs haproxy into /usr/sbin).
    assert shutil.which("haproxy", path=USER_PATH) is None
    assert find_binary("haproxy", path=USER_PATH) == "/usr/sbin/haproxy"


def test_missing_binaries_name_their_debian_packages(tmp_path: Path) -> None:
    executable(tmp_path, "haproxy")

    with pytest.raises(MissingBinary) as missing:
        require_binaries("haproxy", "redis-sentinel", "redis-cli", path=str(tmp_path), system_dirs=())

    assert missing.value.names == ("redis-sentinel", "redis-cli")
    assert str(missing.value) == (
        "redis-sentinel (Debian package redis-sentinel), redis-cli (Debian package redis-tools) not found on "
        "PATH or in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; "
        "install with: sudo apt-get install redis-sentinel redis-tools (or run scripts/setup.sh)"
    )


@pytest.mark.parametrize(
    ("binary", "package"),
    [
        ("redis-server", "redis-server"),
        ("redis-sentinel", "redis-sentinel"),
        ("redis-cli", "redis-tools"),
        ("redis-benchmark", "redis-tools"),
        ("haproxy", "haproxy"),
        ("memcached", "memcached"),
    ],
)
def test_each_binary_maps_to_its_package(binary: str, package: str) -> None:
    assert missing_message([binary]).startswith(f"{binary} (Debian package {package}) not found")
    assert f"sudo apt-get install {package} " in missing_message([binary])


def test_found_binaries_come_back_by_name(tmp_path: Path) -> None:
    tool = executable(tmp_path, "tool")

    assert require_binaries("tool", path=str(tmp_path), system_dirs=()) == {"tool": str(tool)}
