"""Misconfiguration stops the process at start, with a message that says what to fix.

Each case starts a fresh Python process that loads the settings the way every entry point does
(``django.setup()``), with an environment made here from scratch: nothing of the test run's own
environment (``DATABASE_URL``, ``REQUIRE_POSTGRES``, ``PYTEST_*``, ``DJANGO_*``…) leaks in, and
pytest is not imported there, so the development key is not allowed by its presence.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = (
    "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'dth_project.settings'; "
    "django.setup(); from django.conf import settings; "
    "print('engine', settings.DATABASES['default']['ENGINE'])"
)


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        # The default SQLite file goes here, not into the work tree's var/.
        "DTH_VAR_DIR": str(tmp_path / "var"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", SETUP],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_good_configuration_starts(tmp_path):
    """The control: the same harness with a valid environment starts (so failures below are
    the settings' own)."""
    done = start(tmp_path, SECRET_KEY="a-test-secret-key")
    assert done.returncode == 0, done.stderr
    assert "engine django.db.backends.sqlite3" in done.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({}, "SECRET_KEY is required when DEBUG is off", id="no-secret-key"),
        pytest.param(
            {"DEBUG": "0", "DTH_DEMO": "0"},
            "SECRET_KEY is required when DEBUG is off",
            id="no-secret-key-debug-off",
        ),
        pytest.param(
            {"SECRET_KEY": "k", "DATABASE_URL": "mysql://x"},
            "DATABASE_URL must be a postgres:// or sqlite:// URL",
            id="unsupported-engine",
        ),
        pytest.param(
            {"SECRET_KEY": "k", "REQUIRE_POSTGRES": "1", "DATABASE_URL": "sqlite:///x.db"},
            "REQUIRE_POSTGRES=1 but DATABASE_URL is not PostgreSQL",
            id="require-postgres-refuses-sqlite",
        ),
        pytest.param(
            {"SECRET_KEY": "k", "DEBUG": "maybe"},
            "DEBUG='maybe' is not a boolean",
            id="debug-not-boolean",
        ),
        pytest.param(
            {"SECRET_KEY": "k", "FHIR_MAX_COUNT": "lots"},
            "FHIR_MAX_COUNT='lots' is not a whole number",
            id="count-not-a-number",
        ),
    ],
)
def test_misconfiguration_fails_at_start_with_a_clear_message(tmp_path, env, message):
    done = start(tmp_path, **env)
    assert done.returncode != 0, done.stdout
    assert "ImproperlyConfigured" in done.stderr
    # The message is the last line of the traceback, where a person starting the server looks.
    last = done.stderr.strip().splitlines()[-1]
    assert message in last, done.stderr


@pytest.mark.parametrize("flag", ["DEBUG", "DTH_DEMO"])
def test_development_key_only_for_debug_or_demo(tmp_path, flag):
    done = start(tmp_path, **{flag: "1"})
    assert done.returncode == 0, done.stderr
