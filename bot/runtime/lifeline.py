"""A child process ends when the process that started it is gone.

``serve --workers N``'s workers and each serving process's chart process are spawned children. When
their parent ends without stopping them (SIGKILL, a crash, a supervisor giving up on a slow stop),
nothing else would: a worker would keep its ``SO_REUSEPORT`` socket and take a share of the
connections of the next ``serve`` on that port with the old code, and a chart process would wait
on its queue forever (it holds both ends of the pipe, so it never reads an end of file)."""

import os
import signal
import threading
import time


def follow(parent: int, *, interval: float = 1.0) -> None:
    """In the child: SIGTERM to itself (a worker's graceful shutdown; a chart process simply ends)
    within ``interval`` seconds of ``parent`` (its pid, passed by the parent: read in the child it
    could already be init's) no longer being its parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()
