"""``serve --workers N``: N serving processes on one port, and the parent that supervises them.

Each worker is a spawned process that builds the whole app from the environment (``worker_app``:
Bolt app, outbox sender, scheduler, chart process) and then listens on its own socket bound with
``SO_REUSEPORT``, so the kernel deals new connections out by hash over the workers ready to answer.
(uvicorn's own ``--workers`` shares one socket: an idle worker's accept loop took every connection
of a burst, and the other worker sat idle.) The sender and the scheduler already take turns through
PostgreSQL (claimed outbox rows, ``scheduled_run``), so N of them deliver each message and run each
job once.

The parent forwards SIGTERM and SIGINT to the workers as SIGTERM (each shuts down gracefully, as a
single ``serve`` does), starts a worker again if one dies on its own (at most once every
``RESTART_SECONDS``), and returns when all have stopped.
"""

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess

import uvicorn

log = logging.getLogger("platform_feedback")
RESTART_SECONDS = 5.0


def listening_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket on (host, port) that other processes can bind too (``SO_REUSEPORT``). OSError if
    the port is taken by anything else."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def worker_app():
    """The app of one worker, built in the worker from the same environment; the parent migrated."""
    from bot.runtime import logs
    from bot.runtime.app import create_app, serving_web_app
    from bot.runtime.config import load_policy
    from bot.runtime.settings import load_settings

    settings = load_settings()
    logs.configure(secrets=settings.secrets())
    return serving_web_app(*create_app(settings, load_policy(settings.config_file), settings.database()))


class _WorkerServer(uvicorn.Server):
    """uvicorn's Server for a worker. A terminal's Ctrl-C reaches every process of the group and the
    parent answers it with SIGTERM to each worker, so a worker ignores SIGINT: the order in which the
    two arrive cannot matter (uvicorn takes a SIGINT after a SIGTERM as "force quit" and skips the
    app's shutdown; the chart process was then never stopped and its semaphores leaked)."""

    def handle_exit(self, sig: int, frame) -> None:
        if sig != signal.SIGINT:
            super().handle_exit(sig, frame)


def _leave(_signum, _frame) -> None:
    """A worker's own SIGTERM handler, outside uvicorn's: while the app is built, and when uvicorn
    raises the signal it caught again after serving. The worker ends by SystemExit(0), its exit
    handlers run (multiprocessing's finalizers release its semaphores), rather than killed by the
    signal."""
    raise SystemExit(0)


def _worker(host: str, port: int, parent: int) -> None:
    from bot.runtime import lifeline, logs
    from bot.runtime.http_limits import uvicorn_options
    from bot.runtime.settings import load_settings

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM for each worker
    signal.signal(signal.SIGTERM, _leave)
    lifeline.follow(parent)
    settings = load_settings()
    logs.configure(secrets=settings.secrets())
    config = uvicorn.Config("bot.runtime.workers:worker_app", factory=True, log_level="info", log_config=None,
                            **uvicorn_options(settings))
    config.load()  # the app, built under ``_leave``: uvicorn's own handler would let a SIGTERM wait for the build
    # Bound here, listening only once the app has started: asyncio's ``create_server(sock=...)``
    # calls ``listen()`` when uvicorn starts serving, after the app is built and its lifespan ran.
    # A socket listening from here would be dealt its share of new connections (SO_REUSEPORT) while
    # the app is built, seconds on a loaded machine, each left unanswered meanwhile (a tracker's
    # delivery past its timeout) or reset if the start fails; the other workers answer them instead.
    try:
        _WorkerServer(config).run(sockets=[listening_socket(host, port, listen=False)])
    finally:  # SystemExit from ``_leave`` too: a stuck database call must not keep the worker
        lifeline.end_past_stuck_calls()


def supervise(host: str, port: int, workers: int) -> int:
    """Run ``workers`` worker processes until SIGTERM/SIGINT; 0 when they all stopped when asked."""
    from bot.runtime.settings import ConfigError

    try:  # bound, never listening (so no connection is dealt to it): a taken port is said once, here
        listening_socket(host, port, listen=False).close()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # multiprocessing's resource tracker, a process the first worker's start makes, warns on stderr,
    # outside the JSON log, about the semaphores of a worker that was killed (it frees them; the
    # death is logged here). Its command line carries this process's -W options (sys.warnoptions).
    sys.warnoptions.append("ignore::UserWarning:multiprocessing.resource_tracker")
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        proc = ctx.Process(target=_worker, args=(host, port, os.getpid()), name="platform-feedback-worker")
        proc.start()
        return proc

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn's graceful shutdown, lifespan included

    procs = [start() for _ in range(workers)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving on %s:%d with %d worker processes: %s", host, port, workers, ", ".join(str(p.pid) for p in procs))
    # Per worker: one that keeps dying is started again at most once every RESTART_SECONDS, and
    # never holds up the start of another (both killed at once: both start again at once).
    started = [0.0] * workers  # a first death is answered at once
    while any(p.is_alive() for p in procs) or not stopping:
        # Until one of the running ones ends (or half a second: a dead one's restart may be due).
        multiprocessing.connection.wait([p.sentinel for p in procs if p.exitcode is None], timeout=0.5)
        for i, proc in enumerate(procs):
            if proc.exitcode is None or stopping or time.monotonic() < started[i] + RESTART_SECONDS:
                continue
            log.warning("worker %d exited with %s; starting another", proc.pid, proc.exitcode)
            procs[i], started[i] = start(), time.monotonic()
    return 0
