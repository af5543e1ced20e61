"""What the benches under bench/ share: the bench database (created, dropped, opened, migrated),
the production server (``python -m dth_project.serve``: granian) and ``manage.py`` run on it, CPU
accounting from /proc, the ``--nice`` priority of what a bench starts, and the percentile of a
sample.

bench/ is not a package: each bench runs as a script with this directory on ``sys.path`` and
imports ``common``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- Statistics --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The sample's value at ``q`` (0 to 1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


# --- The bench database ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_dbname(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def pg(url: str):
    """A psycopg2 connection to ``url`` in autocommit."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def database_exists(admin_url: str, name: str) -> bool:
    conn = pg(admin_url)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        found = cur.fetchone() is not None
    conn.close()
    return found


def recreate_database(admin_url: str, name: str, *, drop_only: bool = False) -> None:
    """Drop the database ``name`` (its connections closed) and, unless ``drop_only``, create it
    empty."""
    from psycopg2 import sql

    conn = pg(admin_url)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()


def django_on(database_url: str, **env: str) -> None:
    """Django set up in this process on ``database_url`` (created if missing, then migrated);
    ``env``: settings put in the environment first (those already set there are kept)."""
    os.environ["DATABASE_URL"] = database_url
    for key, value in env.items():
        os.environ.setdefault(key, value)
    name = urllib.parse.urlsplit(database_url).path.lstrip("/")
    admin = with_dbname(database_url, "postgres")
    if not database_exists(admin, name):
        from psycopg2 import sql

        conn = pg(admin)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.close()
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def in_process(database_url: str, token_name: str) -> str:
    """Django set up in this process with the production settings on ``database_url`` (an
    existing, migrated database), and a new API token of the user ``bench``, named
    ``token_name``, to call the WSGI application with (bench/stack.py, bench/instructions.py)."""
    import io
    import secrets

    os.environ.update(
        DATABASE_URL=database_url,
        REQUIRE_POSTGRES="1",
        DEBUG="0",
        FHIR_BASE_URL="",
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    setup_django()
    from django.core.management import call_command

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        call_command("issue_token", "bench", "--name", token_name)
    return out.getvalue().strip().splitlines()[-1]


def setup_django() -> None:
    """Django set up in this process (the project importable, its settings by default)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dth_project.settings")
    import django

    django.setup()


def manage(env: dict, *argv: str, timeout: float = 300) -> str:
    """``manage.py argv`` with ``env``: its output; a RuntimeError with the output if it failed."""
    out = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(argv)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


def issue_token(env: dict, name: str) -> str:
    """A new API token of the user ``bench`` (made if missing), named after the bench."""
    return manage(env, "issue_token", "bench", "--name", name).strip().splitlines()[-1]


# --- Priority (--nice) -------------------------------------------------------------------------


def set_autogroup_nice(pid: int | str, nice: int) -> int | None:
    """With autogroup scheduling (Linux), CPU is shared between sessions first: a process's nice
    counts only within its session, so the session's group is given the nice value too.
    Returns the group's previous nice value (None: no autogroup)."""
    path = Path(f"/proc/{pid}/autogroup")
    try:
        before = int(path.read_text().split("nice")[1])
        path.write_text(str(nice))
    except (OSError, IndexError, ValueError):
        return None
    return before


def niced(nice: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child the priority ``nice`` (None for 0)."""
    return (lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)) if nice else None


def popen_niced(cmd: list[str], nice: int = 0, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(cmd, **kwargs)`` in a session of its own, the process and the session's
    autogroup at ``nice``."""
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=niced(nice), **kwargs)
    if nice:
        set_autogroup_nice(proc.pid, nice)
    return proc


def renice(pids: Iterable[int], nice: int) -> None:
    """The processes ``pids`` (e.g. a database's PostgreSQL backends) at ``nice``; those gone or
    not ours are passed over."""
    if nice:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, nice)


# --- The production server ---------------------------------------------------------------------


def start_server(
    env: dict,
    port: int,
    server_args: list[str],
    log_path: str | Path,
    token: str,
    *,
    nice: int = 0,
    timeout: float = 60.0,
    interval: float = 0.2,
) -> tuple[subprocess.Popen, IO]:
    """The production server (``python -m dth_project.serve``) on 127.0.0.1:``port``, its
    output in ``log_path``, once ``/fhir/metadata`` answers 200 with ``token``: the process and
    the open log (for `stop_server`). A RuntimeError naming the log if it exits or is not up in
    time."""
    cmd = [sys.executable, "-m", "dth_project.serve", "--port", str(port), *server_args]
    print(f"server: {' '.join(cmd[1:])}", flush=True)
    log = open(log_path, "w")  # noqa: SIM115 (closed in stop_server)
    proc = popen_niced(cmd, nice, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"server pid {proc.pid}, log {log_path}", flush=True)
    ask = urllib.request.Request(
        f"http://127.0.0.1:{port}/fhir/metadata", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(ask, timeout=5) as answer:
                if answer.status == 200:
                    return proc, log
        except OSError:  # refused, or an HTTP error (urllib.error.URLError is one)
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc, log)
            raise RuntimeError(f"the server did not start: see {log_path}")
        time.sleep(interval)


def stop_server(proc: subprocess.Popen | None, log: IO | None) -> None:
    """A graceful stop (SIGTERM: the server lets requests in progress finish), killed after
    40 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if log is not None:
        log.close()


# --- CPU accounting from /proc -----------------------------------------------------------------


def _ticks(pid: int) -> int:
    """CPU ticks (user + system) the process has used; 0 for one gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _postgres_pids(database: str | None) -> list[int]:
    """The backends serving ``database`` (``postgres: … user database host`` in ps), or with
    no database every PostgreSQL process, other users' included."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() not in ("postgres", "postmaster"):
                        continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    words = f.read().replace(b"\0", b" ").decode(errors="replace").split()
            except OSError:
                continue
            if database is None or database in words:
                pids.append(int(entry))
    return pids


def _machine_busy() -> tuple[int, int]:
    """Ticks the machine's CPUs have been busy and in all, since boot."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return sum(cpu) - idle, sum(cpu)
