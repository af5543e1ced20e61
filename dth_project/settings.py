"""Settings for CloudDTH, read from the environment (twelve-factor style).

Every setting that differs between a laptop demo and production comes from an environment
variable, documented in the README. With nothing set, the project runs on a SQLite file under
``var/`` with Celery tasks executed in process, so ``make demo`` works on a fresh machine.
Misconfiguration stops the process at start with a message that says what to fix.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DTH_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off."
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    # A fixed development key is only acceptable when nothing real can be signed with it.
    if DEBUG or env_bool("DTH_DEMO", False) or "pytest" in sys.modules:
        SECRET_KEY = "insecure-development-key-do-not-use-in-production"
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY to a long random string "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(50))'`), "
            "or set DEBUG=1 / DTH_DEMO=1 for a local demo."
        )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

# The base URL that FHIR resources are known by, used in Location headers, Bundle fullUrls and
# paging links. Defaults to the host the request came in on.
FHIR_BASE_URL = os.environ.get("FHIR_BASE_URL", "").rstrip("/")
if FHIR_BASE_URL and not FHIR_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"FHIR_BASE_URL={FHIR_BASE_URL!r} must start with http:// or https://."
    )

# Page sizes for searches and history (hl7.org/fhir/R4B/http.html#paging).
FHIR_DEFAULT_COUNT = env_int("FHIR_DEFAULT_COUNT", 50)
FHIR_MAX_COUNT = env_int("FHIR_MAX_COUNT", 1000)
# Largest request body accepted, in bytes (a transaction bundle from an EHR can be large).
FHIR_MAX_BODY_BYTES = env_int("FHIR_MAX_BODY_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = FHIR_MAX_BODY_BYTES

INSTALLED_APPS = [
    # django.contrib.admin with CloudDTH's site: its branding, and forged action selections
    # refused instead of ending in a server error (dth_project/admin_site.py).
    "dth_project.apps.CloudDTHAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "fhir_api",
    "devices",
    "twins",
    "forecasting",
    "imaging",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, the clinicians' pages and their vendored Chart.js) from the
    # app server itself, with DEBUG off too: the production server serves them, no other web
    # server needed (WhiteNoise, see dth_project.staticfiles).
    "dth_project.staticfiles.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# FHIR clients post to both /fhir and /fhir/; a redirect would lose the body.
APPEND_SLASH = False

ROOT_URLCONF = "dth_project.urls"
WSGI_APPLICATION = "dth_project.wsgi.application"
ASGI_APPLICATION = "dth_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
REQUIRE_POSTGRES = env_bool("REQUIRE_POSTGRES", False)
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if REQUIRE_POSTGRES and not DATABASE_URL:
    DATABASE_URL = "postgres://postgres@127.0.0.1:5432/clouddth"
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'clouddth.sqlite3'}"
try:
    _default_db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 600))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} cannot be used: {exc}") from None
_engine = _default_db.get("ENGINE", "")
if _engine not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    raise ImproperlyConfigured(
        f"DATABASE_URL must be a postgres:// or sqlite:// URL (got engine {_engine!r})."
    )
if REQUIRE_POSTGRES and _engine != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        "REQUIRE_POSTGRES=1 but DATABASE_URL is not PostgreSQL: refusing to fall back to SQLite."
    )
if _engine == "django.db.backends.sqlite3":
    # WAL lets readers go on while one writer commits; the timeout rides out short write locks.
    _default_db["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _default_db["CONN_MAX_AGE"] = 0
    # A file, not :memory:, so that a live server in another process sees the test database.
    _default_db["TEST"] = {"NAME": str(VAR_DIR / "test-clouddth.sqlite3")}
else:
    # Django's backend, with a health check of persistent connections that needs no round trip
    # to the server (dth_project/postgresql/base.py).
    _default_db["ENGINE"] = "dth_project.postgresql"
    _default_db["CONN_HEALTH_CHECKS"] = True
    _default_db.setdefault("TEST", {})["NAME"] = os.environ.get("TEST_DATABASE_NAME") or None
    # Planner costs for indexes that are cached or on SSD, as a FHIR store's are. With the default
    # random_page_cost of 4 (spinning disks) PostgreSQL scanned all 2M reference rows for
    # Patient?_has:Observation:patient:code-value-quantity=… rather than probe 800 of them:
    # 1.1 s instead of 0.06 s at 1M Observations (bench/search.py, query e). PG_RANDOM_PAGE_COST
    # sets another value; empty leaves the server's.
    _page_cost = os.environ.get("PG_RANDOM_PAGE_COST", "1.1")
    if _page_cost:
        _options = _default_db.setdefault("OPTIONS", {})
        _options["options"] = (
            f"{_options.get('options', '')} -c random_page_cost={_page_cost}".strip()
        )
DATABASES = {"default": _default_db}
# The hottest statements (a create's insert, a patient's search, $lastn) are prepared once per
# PostgreSQL session (fhir_api.prepared);
# off for a pooler in transaction mode (PgBouncer's), whose server sessions change under a client.
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
# With no broker the tasks run in process, eagerly, so the demo needs nothing else running.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

# --- Twins (twins/) ------------------------------------------------------------------------------
# Seconds after which a reading's row is assumed settled: a refresh moves a twin's safe watermark
# only past rows stored longer ago than this and before the oldest transaction still writing
# (PostgreSQL), so a reading committed late, after one with a higher id, is still applied.
TWIN_SETTLE_SECONDS = env_int("TWIN_SETTLE_SECONDS", 5)
# A transaction open longer than this (a session idle in a transaction) no longer holds it back
TWIN_SETTLE_MAX_SECONDS = env_int("TWIN_SETTLE_MAX_SECONDS", 600)
# Where the "a refresh of this patient is queued and has not started" keys live, so a burst of
# writes queues one refresh: a Redis URL; by default the broker's when it is Redis (the keys are
# named for the queue); "off", or a broker that is not Redis with no URL given: every write
# queues one.
_redis_broker = CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
TWIN_REFRESH_DEBOUNCE_URL = os.environ.get("TWIN_REFRESH_DEBOUNCE_URL") or (
    CELERY_BROKER_URL if _redis_broker else ""
)
if TWIN_REFRESH_DEBOUNCE_URL == "off":
    TWIN_REFRESH_DEBOUNCE_URL = ""
# Seconds a "queued" key lasts: a refresh lost with its task (a worker killed) delays the next
# by at most this long
TWIN_REFRESH_DEBOUNCE_SECONDS = env_int("TWIN_REFRESH_DEBOUNCE_SECONDS", 10)

# --- Forecasting (forecasting/) ---------------------------------------------------------------
try:
    # P(crossing the patient's threshold) from which a forecast opens a predicted alert
    FORECAST_ALERT_PROBABILITY = float(os.environ.get("FORECAST_ALERT_PROBABILITY") or 0.7)
    # A forecast "beats its baseline" with at least this backtest skill (0.1: 10% lower MAE)
    FORECAST_MIN_SKILL = float(os.environ.get("FORECAST_MIN_SKILL") or 0.1)
except ValueError:
    raise ImproperlyConfigured(
        "FORECAST_ALERT_PROBABILITY and FORECAST_MIN_SKILL are decimal numbers."
    ) from None
if not 0 < FORECAST_ALERT_PROBABILITY <= 1:
    raise ImproperlyConfigured("FORECAST_ALERT_PROBABILITY is a probability in (0, 1].")
FORECAST_HORIZON_HOURS = env_int("FORECAST_HORIZON_HOURS", 48)
if not 24 <= FORECAST_HORIZON_HOURS <= 72:
    raise ImproperlyConfigured("FORECAST_HORIZON_HOURS is 24 to 72.")
FORECAST_SAMPLES = env_int("FORECAST_SAMPLES", 200)
if FORECAST_SAMPLES < 20:
    raise ImproperlyConfigured("FORECAST_SAMPLES is at least 20 (for the 95% interval).")
# New hourly means of a vital since its last forecast that make it due again
FORECAST_REFORECAST_HOURS = env_int("FORECAST_REFORECAST_HOURS", 6)
# UTC hour of the nightly forecast of every series (celery beat)
FORECAST_NIGHTLY_HOUR = env_int("FORECAST_NIGHTLY_HOUR", 2)
if not 0 <= FORECAST_NIGHTLY_HOUR <= 23:
    raise ImproperlyConfigured("FORECAST_NIGHTLY_HOUR is an hour, 0 to 23.")
# Re-forecast a series after each twin refresh that brought enough new data (0: only nightly)
FORECAST_ON_NEW_DATA = env_bool("FORECAST_ON_NEW_DATA", True)
# Seconds a forecast task may run: at the soft limit it stops and stores a failed run with the
# reason; at the hard limit the worker process is killed
FORECAST_SOFT_TIME_LIMIT = env_int("FORECAST_SOFT_TIME_LIMIT", 120)
FORECAST_TIME_LIMIT = env_int("FORECAST_TIME_LIMIT", 180)
if not 0 < FORECAST_SOFT_TIME_LIMIT < FORECAST_TIME_LIMIT:
    raise ImproperlyConfigured("FORECAST_SOFT_TIME_LIMIT is above 0 and below FORECAST_TIME_LIMIT.")
# Milliseconds a forecast task waits for a row lock (PostgreSQL lock_timeout) before it gives up
# and is retried with backoff, rather than holding a worker behind a long transaction
FORECAST_LOCK_TIMEOUT_MS = env_int("FORECAST_LOCK_TIMEOUT_MS", 10_000)
# The queue tasks are sent to and workers consume: deployments (or test runs) sharing a broker
# keep apart by giving each its own.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE") or "celery"

MQTT_URL = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883")
# Device readings are published to <prefix>/<device>/readings; deployments (or test runs) that
# share a broker each take a prefix of their own (devices.mqtt checks it).
MQTT_TOPIC_PREFIX = os.environ.get("MQTT_TOPIC_PREFIX", "dth/devices")
# What a sender without a valid device key may leave as dead letters (devices.services
# .unauthenticated_letter): at most this many an hour per registered device, as many for all
# unregistered ones together, each at most this many bytes. Enough to see and replay a wearable
# whose key was revoked or that is not registered yet; not a way for anyone to fill the database.
DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR = env_int("DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR", 60)
DEVICE_UNAUTHENTICATED_LETTER_BYTES = env_int("DEVICE_UNAUTHENTICATED_LETTER_BYTES", 64 * 1024)

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
# WhiteNoise serves what the static finders find, so no collectstatic step is needed before
# starting the server (a deployment may still run collectstatic into STATIC_ROOT).
WHITENOISE_USE_FINDERS = True

# --- Imaging (DICOM) -------------------------------------------------------------------------
# DICOM files are kept whole, content-addressed, in the "dicom" storage (imaging/storage.py).
DICOM_STORAGE_DIR = Path(os.environ.get("DICOM_STORAGE_DIR") or VAR_DIR / "dicom")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "dicom": {
        "BACKEND": "imaging.storage.AtomicFileSystemStorage",
        "OPTIONS": {"location": str(DICOM_STORAGE_DIR)},
    },
}
# The identifier system under which a Patient carries the DICOM PatientID (0010,0020): a study
# is attached to the Patient with identifier DICOM_PATIENT_ID_SYSTEM|<PatientID>, else quarantined.
DICOM_PATIENT_ID_SYSTEM = os.environ.get(
    "DICOM_PATIENT_ID_SYSTEM", "https://clouddth.example/patient-id"
)

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_HTTPONLY = False
    SECURE_CONTENT_TYPE_NOSNIFF = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["fhir_api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "fhir_api.parsers.FHIRJSONParser",
        "fhir_api.parsers.JSONPatchParser",
    ],
    # application/json too, for Accept: application/json and _format=application/json.
    "DEFAULT_RENDERER_CLASSES": [
        "fhir_api.renderers.FHIRJSONRenderer",
        "fhir_api.renderers.JSONRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "fhir_api.negotiation.FHIRContentNegotiation",
    "EXCEPTION_HANDLER": "fhir_api.exception_handler.fhir_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "URL_FORMAT_OVERRIDE": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "fhir_api": {"level": os.environ.get("LOG_LEVEL", "INFO")},
    },
}
