#!/usr/bin/env python
"""Screenshots of the clinicians' views for the README, in headless Chromium.

    .venv/bin/python docs/take_screenshots.py [--backfill HOURS] [--duration SECONDS] [--keep]

What it does, all on a throw-away SQLite database under a temporary ``DTH_VAR_DIR``:

1. ``migrate`` and ``load_demo`` (six demo patients with their conditions and one set of vitals);
2. six simulated patients (``simulate_wearables``' own, same seed): ``--backfill`` hours of
   history ingested in process (charts and personal baselines get data), in which a sepsis
   episode (patient 1) and hypoxia (patient 3) began 90 minutes ago; then
   ``simulate_wearables`` goes on streaming them live over HTTP for ``--duration`` seconds at
   30 readings/s, the episodes still running, to the production server (dth_project.serve,
   DEBUG off; static files through WhiteNoise);
3. a clinician (group ``clinician``) logs in: a session made with Django's test client
   (``force_login``), its cookie handed to Chromium; one alert is acknowledged and assigned so
   the ward shows triage states;
4. Chromium (Debian's ``chromium``) is driven over the DevTools protocol on a pipe
   (``--remote-debugging-pipe``: no extra package, no network port): set the cookie, open the
   ward overview and the most at-risk patient's twin page, wait for the charts, and capture
   each full page into ``docs/ward-overview.png`` and ``docs/patient-twin.png``.

No login shortcut exists in the application for this: the session is an ordinary one.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WIDTH, HEIGHT = 1400, 1000
PATIENTS, SEED = 6, 1
# kind:patient:start:hours, started 90 minutes before the live stream, still on during it.
EPISODES = ("sepsis:1:-1.5h:4", "hypoxia:3:-1.5h:4")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds:g} s") from None
            time.sleep(0.3)


def django_setup(env: dict[str, str]) -> None:
    """Django in this process, on the same database as the server."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def backfill(hours: float, patients: int, seed: int) -> None:
    """``hours`` of history for the simulated patients up to now, the episodes included,
    ingested in this process in 15-minute batches (over HTTP, one small batch per request, it
    would take many minutes): the charts get a day of data and the twins their personal
    baselines. The live stream that follows (``simulate_wearables``, same seed and episodes)
    goes on from there."""
    from datetime import timedelta

    from django.utils import timezone

    from devices import services
    from devices.adapters import parse_payload
    from devices.management.commands.simulate_wearables import setup
    from devices.models import Device
    from devices.simulator import Simulator, parse_episode

    people = setup(patients, seed)
    devices = {ident: Device.objects.get(identifier=ident) for _p, ident, _k in people}
    end = timezone.now()
    episodes = [parse_episode(e, end) for e in EPISODES]
    simulator = Simulator(list(devices), seed=seed, episodes=episodes)
    moment, step = end - timedelta(hours=hours), timedelta(minutes=15)
    while moment < end:
        batch = simulator.readings(moment, min(moment + step, end))
        for identifier, items in batch.items():
            services.ingest(devices[identifier], parse_payload({"readings": items}), source="http")
        moment += step
    print(f"backfilled {hours:g} h for {patients} simulated patients")


def prepare_session() -> tuple[str, str]:
    """(session cookie value, the most at-risk patient's id): a clinician logged in, one
    alert acknowledged and one assigned, through the same services the pages call."""
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from twins import services
    from twins.models import Alert
    from twins.roles import CLINICIAN, NURSE, ensure_roles
    from twins.ward import ward_rows

    ensure_roles()
    doctor, _ = User.objects.get_or_create(
        username="a.okonkwo",
        defaults={"first_name": "Adaeze", "last_name": "Okonkwo", "is_staff": True},
    )
    doctor.groups.add(Group.objects.get(name=CLINICIAN))
    nurse, _ = User.objects.get_or_create(
        username="j.reyes", defaults={"first_name": "Jo", "last_name": "Reyes", "is_staff": True}
    )
    nurse.groups.add(Group.objects.get(name=NURSE))
    rows = ward_rows()
    open_alerts = list(Alert.objects.exclude(status=Alert.RESOLVED).order_by("-severity", "pk"))
    if len(open_alerts) > 1:
        services.act_on_alert(
            open_alerts[-1].pk, "acknowledge", doctor, "Seen, rechecking in 15 min"
        )
    if open_alerts:
        services.act_on_alert(open_alerts[0].pk, "assign", doctor, assignee=nurse.username)
    client = Client()
    client.force_login(doctor)
    return client.cookies["sessionid"].value, rows[0]["patient_id"]


class DevTools:
    """Chrome DevTools protocol over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out, NUL-framed)."""

    def __init__(self, chromium: str, profile: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def plumb() -> None:
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            preexec_fn=plumb,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *, browser: bool = False):
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_event(self, method: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._read().get("method") == method:
                return
        raise RuntimeError(f"no {method} within {seconds:g} s")

    def open_page(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, browser=True
        )
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Network.enable")

    def screenshot(self, url: str, out: Path, settle: float) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        time.sleep(settle)  # the ward's first poll, the charts' series requests
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        height = max(HEIGHT, int(size["height"]))
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        time.sleep(1.0)  # charts re-layout to the new viewport
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        out.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {out.relative_to(ROOT)} ({WIDTH}×{height})")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.send("Browser.close", browser=True)
        self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backfill", type=float, default=26, help="hours of history first")
    parser.add_argument("--duration", type=float, default=20, help="seconds of live stream")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        sys.exit("chromium is not installed: apt-get install -y chromium")
    var = Path(tempfile.mkdtemp(prefix="dth-screens-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DTH_VAR_DIR": str(var),
        "DTH_DEMO": "1",
        "DEBUG": "0",
        "DATABASE_URL": "",
        "REQUIRE_POSTGRES": "0",
        "CELERY_BROKER_URL": "",
        "PORT": str(port),
        "DJANGO_SETTINGS_MODULE": "dth_project.settings",
    }
    server = None
    try:
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "load_demo")
        django_setup(env)
        backfill(args.backfill, PATIENTS, SEED)
        server = subprocess.Popen(
            [PYTHON, "-m", "dth_project.serve", "--workers", "2"],
            cwd=ROOT,
            env=env,
        )
        wait_for(f"{url}/fhir/metadata")
        manage(
            env,
            "simulate_wearables",
            f"--patients={PATIENTS}",
            f"--seed={SEED}",
            "--rate=30",
            f"--duration={args.duration:g}",
            *(f"--episode={e}" for e in EPISODES),
            f"--url={url}",
        )
        cookie, patient_id = prepare_session()
        browser = DevTools(chromium, str(var / "chromium-profile"))
        try:
            browser.open_page()
            browser.send(
                "Network.setCookie",
                {"name": "sessionid", "value": cookie, "url": url, "httpOnly": True},
            )
            browser.screenshot(f"{url}/twins/ward/", ROOT / "docs" / "ward-overview.png", 4.0)
            browser.screenshot(
                f"{url}/twins/patient/{patient_id}/", ROOT / "docs" / "patient-twin.png", 5.0
            )
        finally:
            browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if args.keep:
            print(f"kept {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
