"""Real processes of the app for the tests that run it as deployed: a Celery worker
(``celery -A dth_project worker``) and the production server (``dth_project.serve``), both on
the test database and the test's own queue, started, awaited, stopped and cleaned up after.

A worker takes only the queue it is given (``CELERY_QUEUE``), so another worker on the
machine never takes a test's tasks and the test's worker takes no one else's; `forget_queue`
leaves nothing of that queue on the broker afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import requests
from celery import Celery

from .conftest import ROOT, _database_url, _free_port

T = TypeVar("T")


def wait(predicate: Callable[[], T], what: str, timeout: float = 60.0, interval: float = 0.1) -> T:
    """``predicate()``'s first true value, asked every ``interval`` seconds; an AssertionError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return value


def app_env(secret: str, broker: str, queue: str, **extra: str) -> dict[str, str]:
    """The environment of a process of the app on the test database, sending and taking its
    tasks on ``queue`` of ``broker``; ``extra``: more settings."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REQUIRE_POSTGRES": "0",
        "SECRET_KEY": secret,
        "DEBUG": "0",
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "CELERY_QUEUE": queue,
        **extra,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``python -m argv`` from the repository, its output written to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *argv], cwd=ROOT, env=env, stdout=log, stderr=log
        )


def spawn_worker(env: dict[str, str], queue: str, log_path: Path) -> subprocess.Popen:
    """A worker as deployed, two prefork processes, named after ``queue`` (it takes the
    ``CELERY_QUEUE`` of ``env``); `worker_ready` tells when it takes tasks."""
    argv = [
        "celery",
        "-A",
        "dth_project",
        "worker",
        "--pool=prefork",
        "--concurrency=2",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname={queue}@%h",
    ]
    return spawn(argv, env, log_path)


def spawn_server(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """The production server (``python -m dth_project.serve``) with two workers on
    127.0.0.1:``port``; `server_ready` tells when it answers."""
    argv = ["dth_project.serve", "--port", str(port), "--workers", "2"]
    return spawn(argv, env, log_path)


@contextmanager
def one_worker_server(
    log_path: Path, secret: str, **settings: str
) -> Iterator[tuple[subprocess.Popen, str]]:
    """The production server with one worker on the test database, on a free port given as
    ``PORT`` and with ``settings`` in its environment, once it answers: (its process, its URL);
    stopped afterwards."""
    port = _free_port()
    env = app_env(secret, "memory://", "unused", PORT=str(port), **settings)
    proc = spawn(["dth_project.serve", "--workers", "1"], env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: server_ready(proc, url, log_path), "the server to start", interval=0.2)
        yield proc, url
    finally:
        stop([proc])


def _alive(proc: subprocess.Popen, log_path: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"exited early, see {log_path}:\n{log_path.read_text()[-3000:]}")


def worker_ready(proc: subprocess.Popen, log_path: Path) -> bool:
    """The worker has said it is ready; a RuntimeError with its log's end if it exited."""
    _alive(proc, log_path)
    return " ready." in log_path.read_text()


def server_ready(proc: subprocess.Popen, url: str, log_path: Path) -> bool:
    """The server answers ``/fhir/metadata``; a RuntimeError with its log's end if it exited."""
    _alive(proc, log_path)
    try:
        return requests.get(f"{url}/fhir/metadata", timeout=5).ok
    except requests.RequestException:
        return False


def stop(procs: Iterable[subprocess.Popen], timeout: float = 20.0) -> None:
    """Terminate the processes, killing any still running after ``timeout`` seconds."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def producer(name: str, broker: str, queue: str) -> Celery:
    """An app to send tasks by name to ``queue`` of ``broker`` (checked up), as anything else on
    the broker would. Not made the current app: this process's own tasks (e.g. the twin's
    refresh after a write) stay in process, in this test and in those run after it."""
    app = Celery(name, broker=broker, backend=broker, set_as_current=False)
    app.conf.task_default_queue = queue
    app.connection_for_write().ensure_connection(max_retries=1)
    return app


def forget_queue(producer: Celery, queue: str) -> None:
    """Leave nothing of ``queue`` on the broker: its messages, the queue and, on Redis, the
    routing of its exchange."""
    with producer.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)
        conn.default_channel.queue_delete(queue)
        if conn.transport.driver_type == "redis":
            conn.default_channel.client.delete(
                f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
            )
