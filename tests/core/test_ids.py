"""Random ids are version 4 UUIDs from the kernel's CSPRNG, drawn in bulk: never repeated, not
across threads, and not by a forked child that inherited a partly used draw."""

from __future__ import annotations

import os
import sys
import threading
import uuid

from gateway.core import ids
from gateway.core.ids import new_id, uuid4


def test_ids_are_random_version_4_uuids_and_never_repeat():
    ids = [uuid4() for _ in range(20_000)]  # more than one draw from the kernel
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)
    text = new_id()
    assert str(uuid.UUID(text)) == text and uuid.UUID(text).version == 4


def test_threads_draw_their_own_ids(monkeypatch):
    # Four threads that start together, each taking fewer ids than one draw holds: each must ask
    # the kernel once for itself. A pool shared between threads would be asked once in all (and
    # could hand two threads the same bytes).
    draws: list[int] = []  # which thread drew (other threads of the test process may draw too)
    real = ids._draw

    def draw_counted():
        draws.append(threading.get_ident())
        return real()

    monkeypatch.setattr(ids, "_draw", draw_counted)
    found: list[list[uuid.UUID]] = [[] for _ in range(4)]
    start = threading.Barrier(len(found))

    def draw(out: list[uuid.UUID]) -> None:
        start.wait()
        out.extend(uuid4() for _ in range(100))

    threads = [threading.Thread(target=draw, args=(out,)) for out in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in found for i in out]
    assert sorted(ident for ident in draws if ident in {t.ident for t in threads}) == sorted(t.ident for t in threads)
    assert len(set(every)) == 400


def test_an_id_taken_in_the_middle_of_taking_one_is_another_id():
    # A signal handler or finaliser may run between any two lines of uuid4 on the same thread:
    # here another id is taken at every line of one call (and of a refill from the kernel).
    nested: list[uuid.UUID] = []
    busy: list[bool] = []

    def at_every_line(frame, event, arg):
        if event == "line" and not busy:
            busy.append(True)
            try:
                nested.append(uuid4())
            finally:
                busy.pop()
        return at_every_line

    def tracer(frame, event, arg):
        return at_every_line if frame.f_code is ids.uuid4.__code__ and not busy else None

    ids._forget()  # the traced call must also draw afresh
    previous = sys.gettrace()  # a coverage tool's, say
    sys.settrace(tracer)
    try:
        outer = [uuid4() for _ in range(3)]
    finally:
        sys.settrace(previous)
    assert len(nested) >= 6
    assert len(set(nested + outer)) == len(nested) + len(outer)


def test_a_forked_child_does_not_hand_out_the_ids_its_parent_drew():
    uuid4()  # the parent has a draw, most of it unused
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, b"".join(uuid4().bytes for _ in range(8)))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 16 * 8)
    os.close(read)
    os.waitpid(pid, 0)
    parent = b"".join(uuid4().bytes for _ in range(8))
    assert len(child) == 128 and child != parent
    assert not {child[i:i + 16] for i in range(0, 128, 16)} & {parent[i:i + 16] for i in range(0, 128, 16)}
