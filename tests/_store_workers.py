"""Subprocess side of the store crash and concurrency tests (run as a script, not collected).

python tests/_store_workers.py writer URL SESSION
    add turns to SESSION forever, printing each committed seq (the parent SIGKILLs it)
python tests/_store_workers.py hammer URL WORKER THREADS N
    print "ready", wait for a line on stdin, then THREADS threads each add N turns to
    the session "shared" and N to its own session "own-WORKER-THREAD"; print "done"
"""

from __future__ import annotations

import sys
import threading
import time

from ctxengine.memory import store_from_url
from ctxengine.types import Turn


def make_turn(session_id: str, content: str) -> Turn:
    now = time.time()
    return Turn(
        role="user",
        content=content,
        session_id=session_id,
        timestamp=now,
        importance=1.0,
        last_access=now,
        metadata={"writer": content.split(":", 1)[0]},
    )


def writer(url: str, session_id: str) -> None:
    store = store_from_url(url)
    print("ready", flush=True)
    index = 0
    while True:
        stored = store.add(make_turn(session_id, f"crash:{index}:" + "x" * 200))
        # Printed only after add returned, i.e. after COMMIT: the parent's proof of commit.
        print(stored.seq, flush=True)
        index += 1


def add_loop(store: object, worker: str, thread: int, count: int) -> None:
    own = f"own-{worker}-{thread}"
    for j in range(count):
        content = f"{worker}:{thread}:{j}"
        store.add(make_turn("shared", content))  # type: ignore[attr-defined]
        store.add(make_turn(own, content))  # type: ignore[attr-defined]


def hammer(url: str, worker: str, threads: int, count: int) -> None:
    store = store_from_url(url)
    print("ready", flush=True)
    sys.stdin.readline()  # the start signal: every writer begins at the same moment
    pool = [
        threading.Thread(target=add_loop, args=(store, worker, t, count)) for t in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print("done", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "writer":
        writer(args[0], args[1])
    elif mode == "hammer":
        hammer(args[0], args[1], int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
