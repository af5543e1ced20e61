"""gunicorn settings for ``make serve`` and the live test server.

Threads let one worker overlap database waits; workers use both cores. Override with the usual
GUNICORN_CMD_ARGS or WEB_CONCURRENCY.
"""

from __future__ import annotations

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 30
timeout = 120
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "warning").lower()
