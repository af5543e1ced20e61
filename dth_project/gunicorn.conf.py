"""gunicorn settings for ``make serve`` and the live test server.

Threads let one worker overlap database waits; workers use both cores. Override with the usual
GUNICORN_CMD_ARGS or WEB_CONCURRENCY.
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
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 30
timeout = 120
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "warning").lower()
