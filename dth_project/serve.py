"""The production HTTP server: granian serving ``dth_project.wsgi``.

``python -m dth_project.serve [--port N] [--workers N] [--threads N]`` is what ``make serve``,
``make demo``, the live tests and the benches run, so all of them measure and test one server.

Why granian and not gunicorn: granian's HTTP/1.1 is Rust (hyper), and the Python side only
runs the WSGI application. Serving a fixed 54-byte answer took gunicorn's threaded worker
0.25-0.41 ms of CPU per request on the 2-core machines here, granian 0.055 ms; for a one-patient
search with an empty answer that was a quarter of the server's CPU (bench/README.md, session 5).

What that changes for a client:
- A request that is not HTTP/1.1 at all (a malformed request line or method, an unknown
  HTTP version, more than 100 headers, a request head over ``--buffer-size``) is refused by
  the HTTP layer with the bare status (400, 414, 431) and no body, before the application
  exists for it. Every request that parses as HTTP reaches Django and gets an
  OperationOutcome for its errors.
- The request line may be as long as the buffer (about 400 KB), not gunicorn's 4 KB: a long
  GET search (many ``_id`` values, a long chain) is answered instead of refused with 414.

Neither server bounds how long the application takes over one request: gunicorn's worker
timeout did not for its threaded workers ("not tied to the length of time required to handle a
single request", its settings), and granian has no such setting.

Environment: ``PORT`` (8000), ``WEB_CONCURRENCY`` (worker processes; twice the CPUs this process
may run on), ``SERVER_THREADS`` (threads per worker running the application: 1), ``ACCESS_LOG``
(``-`` for stdout or a file path; none by default), ``SERVER_LOG_LEVEL`` (``warning``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "dth_project.wsgi:application"
ACCESS_FORMAT = '%(addr)s - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'


def cpus() -> int:
    """The CPUs this process may run on (a cpuset, taskset); macOS has no sched_getaffinity."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="python -m dth_project.serve", description=__doc__.split("\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(env.get("PORT") or 8000))
    # Two worker processes per CPU, each running the application on one thread, as Django is
    # usually served (gunicorn's sync workers): a worker's requests never contend for its GIL,
    # and while one worker waits for PostgreSQL the other on the core runs. On 2 cores,
    # interleaved in bench/search.py (4 clients, session 7, bench/README.md), 4 x 1 answered
    # the one-patient searches at a p50 about 15 % lower than the former 2 x 5 (c' 4.2-4.4
    # against 5.0-5.4 ms) and took about a tenth less server CPU a request than 4 x 2; 4 x 4
    # cost more still. A request that waits long (a lock, a slow search over all patients)
    # holds its worker: SERVER_THREADS > 1 lets each worker overlap such waits.
    p.add_argument("--workers", type=int, default=int(env.get("WEB_CONCURRENCY") or 2 * cpus()))
    p.add_argument("--threads", type=int, default=int(env.get("SERVER_THREADS") or 1))
    p.add_argument("--access-log", default=env.get("ACCESS_LOG") or None)
    p.add_argument(
        "--log-level",
        default=(env.get("SERVER_LOG_LEVEL") or "warning").lower(),
        choices=[level.value for level in LogLevels],
    )
    p.add_argument(
        "--buffer-size",
        type=int,
        default=HTTP1Settings.max_buffer_size,
        help="bytes of request head (request line and headers) accepted",
    )
    args = p.parse_args(argv)
    if args.workers < 1 or args.threads < 1:
        p.error("--workers and --threads must be at least 1")
    return args


def logging_config(access_log: str | None) -> dict | None:
    """granian's logging configuration: the access log to a file instead of stdout."""
    if not access_log or access_log == "-":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"access": {"()": "logging.Formatter", "fmt": "%(message)s"}},
        "handlers": {
            "access": {
                "formatter": "access",
                "class": "logging.FileHandler",
                "filename": access_log,
            }
        },
        "loggers": {
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False}
        },
    }


def server(args: argparse.Namespace) -> Granian:
    return Granian(
        APPLICATION,
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        websockets=False,
        workers=args.workers,
        blocking_threads=args.threads,
        # A thread idle this long ends, and its database connection with it.
        blocking_threads_idle_timeout=300,
        # Slow clients: a request head must arrive within 30 s, or the connection is closed.
        http1_settings=HTTP1Settings(header_read_timeout=30_000, max_buffer_size=args.buffer_size),
        log_level=LogLevels(args.log_level),
        log_access=bool(args.access_log),
        log_access_format=ACCESS_FORMAT,
        log_dictconfig=logging_config(args.access_log),
        # A worker that dies (out of memory, a crash in a C extension) is replaced.
        respawn_failed_workers=True,
        # SIGTERM: requests in progress get this long to finish.
        workers_kill_timeout=30,
        working_dir=ROOT,
    )


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dth_project.settings")
    sys.path.insert(0, str(ROOT))
    server(options(argv)).serve()


if __name__ == "__main__":
    main()
