"""A child process ends when the process that started it is gone.

``serve --workers N``'s workers and each serving process's chart process are spawned children. When
their parent ends without stopping them (SIGKILL, a crash, a supervisor giving up on a slow stop),
nothing else would: a worker would keep its ``SO_REUSEPORT`` socket and take a share of the
connections of the next ``serve`` on that port with the old code, and a chart process would wait
on its queue forever (it holds both ends of the pipe, so it never reads an end of file).

And a serving process that is done ends (``end_past_stuck_calls``), even with a call still waiting."""

import logging
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


STUCK_SECONDS = 5.0
log = logging.getLogger(__name__)


def end_past_stuck_calls(seconds: float = STUCK_SECONDS) -> None:
    """After serving, as the process ends: Python joins every non-daemon thread before exiting, and
    a worker thread still in a database call (waiting for a lock another session holds; anyio's
    threads are not daemons) kept a stopped worker alive for as long as the lock was held (a
    deploy's SIGTERM that never finished). Wait up to ``seconds`` for such threads, then end the
    process without them: what they served was acked from the spool, which keeps it for the replay
    (``bot.runtime.event_gate.ListenerEnd``)."""
    deadline = time.monotonic() + seconds
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in others if t.is_alive()]
    if stuck:
        log.warning("%d call(s) still waiting as the process ends (a database lock held elsewhere?): ending without them; "
                    "what they served stays in the spool", len(stuck))
        logging.shutdown()
        os._exit(0)
