"""Random identifiers: version 4 UUIDs from the operating system's CSPRNG, exactly as
:func:`uuid.uuid4` makes them, but drawn from the kernel 4 KiB at a time.

:func:`uuid.uuid4` asks the kernel for 16 bytes per id, and CPython lets go of the interpreter
lock around every such call. On a thread that shares the lock with a busy event loop — the
store's writer thread, which records half a dozen audit entries per message — each let-go hands
the lock to the loop, and getting it back can take up to a switch interval (5 ms). Here one call to
the kernel serves 256 ids.
"""

from __future__ import annotations

import os
import threading
import uuid

_IDS_PER_DRAW = 256
_local = threading.local()


def _forget() -> None:
    # A forked child must not hand out the ids its parent drew (both would use the same bytes).
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget)


def uuid4() -> uuid.UUID:
    """A random (version 4) UUID."""
    state = _local.__dict__
    pool: bytes | None = state.get("pool")
    at: int = state.get("at", 0)
    if pool is None or at >= len(pool):
        pool, at = os.urandom(16 * _IDS_PER_DRAW), 0
        state["pool"] = pool
    state["at"] = at + 16
    return uuid.UUID(bytes=pool[at:at + 16], version=4)


def new_id() -> str:
    """A random (version 4) UUID in its usual text form."""
    return str(uuid4())
