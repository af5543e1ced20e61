"""gunicorn settings for ``make serve`` and the live test server.

One worker process per CPU the server may run on, each with 8 threads: the threads overlap
database waits, the processes use every core. More processes than cores cost CPU per request
for nothing: on the 2-core machine bench/crud.py measured 2.2 ms of server CPU per create with
4 workers x 4 threads, 1.6 ms with 2 x 8 (medians of 5 interleaved runs; reads 0.6 ms either
way). Override with WEB_CONCURRENCY and GUNICORN_THREADS, or the usual GUNICORN_CMD_ARGS.
"""

from __future__ import annotations

import os
import sys

# gunicorn's own error answers (414, 431, a malformed request: before Django sees the request)
# as OperationOutcomes, not its HTML page (dth_project/gunicorn_errors.py). This file runs in
# the master before the workers fork, so they inherit it.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dth_project import gunicorn_errors

gunicorn_errors.install()

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
# The CPUs this process may run on (a cpuset, taskset); macOS has no sched_getaffinity.
_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
workers = int(os.environ.get("WEB_CONCURRENCY") or _cpus or 1)
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 8)
keepalive = 30
timeout = 120
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "warning").lower()
