"""Run nftables commands: through ``libnftables.so.1`` (ctypes) or, when it is missing, the ``nft`` CLI.

The library answers a command in about 0.1 ms on this machine; forking ``nft`` costs 3 to 15 ms
(`docs/decisions.md`). Either way a call is one batch of commands that the kernel applies as one
transaction: all of it, or nothing. Both need CAP_NET_ADMIN in the network namespace they act on.

A library context is bound to the network namespace of the thread that created it (its netlink
socket is opened then), and it is not thread-safe: calls are serialised with a lock.
"""

from __future__ import annotations

import ctypes
import subprocess
import threading
from typing import Protocol

from cachefleet.endpoints.base import DataPathError, tool

LIBRARY = "libnftables.so.1"
# From <nftables/libnftables.h>: enum nft_output_flags.
_OUTPUT_JSON = 1 << 4
_CLI_TIMEOUT = 10.0


class NftError(DataPathError):
    """nftables refused a batch (syntax, a missing object, no permission); nothing of it was applied."""


class Nft(Protocol):
    def run(self, commands: str, *, json: bool = False) -> str:
        """Apply ``commands`` (nft syntax, one per line) as one transaction; returns what nft printed
        (JSON when ``json``, for ``list`` commands). Raises ``NftError``."""
        ...


class LibNft:
    """libnftables through ctypes: one context, buffered output and error."""

    def __init__(self, library: str = LIBRARY) -> None:
        lib = ctypes.CDLL(library)  # OSError when the library is absent
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_free.restype = None
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_output_set_flags.restype = None
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
        if not ctx:
            raise NftError("nft_ctx_new failed")
        if lib.nft_ctx_buffer_output(ctx) != 0 or lib.nft_ctx_buffer_error(ctx) != 0:
            lib.nft_ctx_free(ctx)
            raise NftError("libnftables could not buffer its output")
        self._lib = lib
        self._ctx: int | None = ctx
        self._plain_flags = lib.nft_ctx_output_get_flags(ctx)
        self._lock = threading.Lock()

    def run(self, commands: str, *, json: bool = False) -> str:
        with self._lock:
            if self._ctx is None:
                raise NftError("the nftables context is closed")
            flags = self._plain_flags | _OUTPUT_JSON if json else self._plain_flags
            self._lib.nft_ctx_output_set_flags(self._ctx, flags)
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
            # Reading a buffer also resets it for the next command.
            output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode(errors="replace")
            error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
        if rc != 0:
            raise NftError(error.strip() or f"nft failed (status {rc}) on: {commands.strip()}")
        return output

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = None


class CliNft:
    """The ``nft`` program, one fork per batch (``nft -f -`` reads the batch from stdin)."""

    def __init__(self, binary: str = "nft") -> None:
        try:
            self.binary = tool(binary)
        except DataPathError as exc:
            raise NftError(str(exc)) from exc

    def run(self, commands: str, *, json: bool = False) -> str:
        # nft 1.0.6 prints nothing for a JSON listing read with -f, so a JSON read (one command, no
        # quoting) goes on the command line.
        argv = [self.binary, "-j", *commands.split()] if json else [self.binary, "-f", "-"]
        try:
            done = subprocess.run(
                argv, input="" if json else commands, capture_output=True, text=True, timeout=_CLI_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NftError(f"{' '.join(argv)}: {exc}") from exc
        if done.returncode != 0:
            raise NftError(done.stderr.strip() or f"nft exited {done.returncode} on: {commands.strip()}")
        return done.stdout

    def close(self) -> None:
        """Nothing to release: each batch is its own process."""


def open_nft() -> LibNft | CliNft:
    """The library when it loads, else the CLI; ``NftError`` when neither is installed."""
    try:
        return LibNft()
    except OSError:
        return CliNft()
