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
import struct
import threading
import uuid
from collections.abc import Iterator

_IDS_PER_DRAW = 256
_local = threading.local()


def _forget() -> None:
    # A forked child must not hand out the ids its parent drew (both would use the same bytes).
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget)


def _draw() -> Iterator[tuple[bytes]]:
    return struct.iter_unpack("16s", os.urandom(16 * _IDS_PER_DRAW))


def uuid4() -> uuid.UUID:
    """A random (version 4) UUID."""
    # Each id is one next() on the thread's own iterator — a single step in C — so not even a
    # signal handler or finaliser that runs in between, on the same thread, can get the same bytes.
    draws = getattr(_local, "draws", None)
    raw = next(draws, None) if draws is not None else None
    if raw is None:
        draws = _local.draws = _draw()
        raw = next(draws)
    return uuid.UUID(bytes=raw[0], version=4)


def new_id() -> str:
    """A random (version 4) UUID in its usual text form."""
    return str(uuid4())
