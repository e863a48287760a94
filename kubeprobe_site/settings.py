"""KubeProbe settings: one module, driven by environment variables.

Every secret can also be read from a file named by ``<NAME>_FILE`` (Kubernetes
and Docker secrets mount files). See ``deploy/production.env.example`` for a
complete production environment.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from kubeprobe_site.queues import kombu_queues, queue_kinds

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()

# `make run` writes the quick start's settings (SECRET_KEY, database, Redis, ...)
# to .env, so `manage.py` in another shell talks to the same portal. Variables
# already in the environment win; KUBEPROBE_ENV_FILE names another file, or
# none when empty (the test suite never reads a developer's .env).
_env_file = os.environ.get("KUBEPROBE_ENV_FILE", str(BASE_DIR / ".env"))
if _env_file and Path(_env_file).is_file():
    environ.Env.read_env(_env_file, overwrite=False)

VAR_DIR = Path(env.str("KUBEPROBE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("KUBEPROBE_DEBUG", default=False)


def _dev_secret_key() -> str:
    """A random key persisted under var/, for trials only (DEBUG)."""
    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        import secrets

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY or SECRET_KEY_FILE "
            "(or KUBEPROBE_DEBUG=1 for a local trial)."
        )
    SECRET_KEY = _dev_secret_key()

# Fernet keys for secrets at rest (kubeconfigs). Comma-separated: the first
# encrypts, all decrypt, so keys can be rotated.
_encryption_keys = env.list("KUBEPROBE_ENCRYPTION_KEY", default=[])
if not _encryption_keys:
    if not DEBUG:
        raise ImproperlyConfigured(
            "KUBEPROBE_ENCRYPTION_KEY is not set. Generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
            "and set KUBEPROBE_ENCRYPTION_KEY or KUBEPROBE_ENCRYPTION_KEY_FILE."
        )
    _encryption_keys = [
        base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()
    ]
KUBEPROBE_ENCRYPTION_KEYS: list[str] = _encryption_keys

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

# The address probe pods use to call back (report URL). Must be reachable
# from inside target clusters.
KUBEPROBE_PUBLIC_URL = env.str("KUBEPROBE_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[KUBEPROBE_PUBLIC_URL])

# The local executor runs case commands on the worker host: anyone who can
# edit a template could run code there, so it is off unless asked for.
KUBEPROBE_LOCAL_EXECUTOR_ENABLED = env.bool("KUBEPROBE_LOCAL_EXECUTOR_ENABLED", default=False)

# Run loop.
# Labels this portal's probe pods, so two portals sharing a namespace leave each other alone.
KUBEPROBE_INSTALLATION = env.str("KUBEPROBE_INSTALLATION", default="kubeprobe")
KUBEPROBE_REPORT_GRACE_SECONDS = env.int("KUBEPROBE_REPORT_GRACE_SECONDS", default=15)
KUBEPROBE_MAX_REPORT_BYTES = 256 * 1024
# Group concurrent reports of one server process into one UPDATE (Postgres).
KUBEPROBE_REPORT_BATCHING = env.bool("KUBEPROBE_REPORT_BATCHING", default=True)
KUBEPROBE_LOCAL_RUN_DIR = Path(env.str("KUBEPROBE_LOCAL_RUN_DIR", default=str(VAR_DIR / "runs")))
KUBEPROBE_KEEP_FAILED_PODS = env.int("KUBEPROBE_KEEP_FAILED_PODS", default=3)
KUBEPROBE_KEEP_FAILED_POD_SECONDS = env.int("KUBEPROBE_KEEP_FAILED_POD_SECONDS", default=3600)
KUBEPROBE_RUN_RETENTION_DAYS = env.int("KUBEPROBE_RUN_RETENTION_DAYS", default=30)
# Postgres: each partition of the runs table holds the runs created in this many hours.
KUBEPROBE_RUN_PARTITION_HOURS = env.float("KUBEPROBE_RUN_PARTITION_HOURS", default=24.0)
KUBEPROBE_DISPATCH_MAX_RETRIES = env.int("KUBEPROBE_DISPATCH_MAX_RETRIES", default=5)
# A cluster's api_qps holds across all worker processes (a token bucket in Redis);
# false: each process keeps its own bucket.
KUBEPROBE_SHARED_API_QPS = env.bool("KUBEPROBE_SHARED_API_QPS", default=True)
# Batch dispatch (apps/runs/dispatch_batch.py): runs one task claims from the
# table at a time, and at most how many claimers a tick wakes (parallel chains).
KUBEPROBE_DISPATCH_BATCH = env.int("KUBEPROBE_DISPATCH_BATCH", default=20)
KUBEPROBE_DISPATCH_WAKE_MAX = env.int("KUBEPROBE_DISPATCH_WAKE_MAX", default=16)
# Schedule fan-out (apps/runs/fanout.py): a tick's runs are inserted in slices of
# about this many runs, on this many database connections at once.
KUBEPROBE_FANOUT_SLICE_RUNS = env.int("KUBEPROBE_FANOUT_SLICE_RUNS", default=100_000)
KUBEPROBE_FANOUT_CONNECTIONS = env.int("KUBEPROBE_FANOUT_CONNECTIONS", default=2)
# Circuit breaker per cluster: after this many consecutive failures to reach its
# API server the cluster is unreachable; its calls fail at once, and one call per
# interval tries again (apps/clusters/breaker.py).
KUBEPROBE_BREAKER_FAILURES = env.int("KUBEPROBE_BREAKER_FAILURES", default=3)
KUBEPROBE_BREAKER_PROBE_SECONDS = env.float("KUBEPROBE_BREAKER_PROBE_SECONDS", default=30.0)
# Cleanup and the orphan sweep spend at most this long on one cluster per pass.
KUBEPROBE_CLEANUP_BUDGET_SECONDS = env.float("KUBEPROBE_CLEANUP_BUDGET_SECONDS", default=10.0)
# Ticks and dispatches that hit a database error retry with backoff for up to this long.
KUBEPROBE_DB_RETRY_SECONDS = env.int("KUBEPROBE_DB_RETRY_SECONDS", default=120)
# A pending run whose dispatch message got lost is sent again after twice its
# binding's period, and never sooner than this (runs without a schedule: this).
KUBEPROBE_REDISPATCH_MIN_SECONDS = env.int("KUBEPROBE_REDISPATCH_MIN_SECONDS", default=15)
# Alerting: flips of one case wait this long to be grouped into one message.
KUBEPROBE_ALERT_GROUP_WAIT_SECONDS = env.float("KUBEPROBE_ALERT_GROUP_WAIT_SECONDS", default=1.0)
KUBEPROBE_NOTIFY_MAX_ATTEMPTS = env.int("KUBEPROBE_NOTIFY_MAX_ATTEMPTS", default=8)
KUBEPROBE_NOTIFY_LEASE_SECONDS = env.int("KUBEPROBE_NOTIFY_LEASE_SECONDS", default=120)
KUBEPROBE_NOTIFY_TIMEOUT_SECONDS = env.float("KUBEPROBE_NOTIFY_TIMEOUT_SECONDS", default=10.0)
# Release gate (apps/gating): the built-in policy's maximum result age, and how often
# a check that waits re-reads its runs.
KUBEPROBE_GATE_DEFAULT_MAX_AGE_SECONDS = env.int(
    "KUBEPROBE_GATE_DEFAULT_MAX_AGE_SECONDS", default=3600
)
KUBEPROBE_GATE_CHECK_POLL_SECONDS = env.float("KUBEPROBE_GATE_CHECK_POLL_SECONDS", default=0.5)
# Diagnosis (apps/diagnosis, docs/diagnosis.md): a rule less sure than this asks the
# classifier; failures within the window group into incidents once the same case
# fails alike on MIN_CLUSTERS clusters, or MIN_CASES cases fail on one cluster.
KUBEPROBE_DIAGNOSIS_MIN_CONFIDENCE = env.float("KUBEPROBE_DIAGNOSIS_MIN_CONFIDENCE", default=0.7)
KUBEPROBE_INCIDENT_WINDOW_SECONDS = env.int("KUBEPROBE_INCIDENT_WINDOW_SECONDS", default=600)
KUBEPROBE_INCIDENT_MIN_CLUSTERS = env.int("KUBEPROBE_INCIDENT_MIN_CLUSTERS", default=3)
KUBEPROBE_INCIDENT_MIN_CASES = env.int("KUBEPROBE_INCIDENT_MIN_CASES", default=3)
# Live dashboards: each page gets at most one batch of cell updates per interval,
# and re-reads which clusters its user may see this often.
KUBEPROBE_LIVE_FLUSH_SECONDS = env.float("KUBEPROBE_LIVE_FLUSH_SECONDS", default=0.2)
# Each pushing process coalesces re-judged pairs over this window (apps/dashboard/push.py).
KUBEPROBE_LIVE_PUSH_WINDOW_SECONDS = env.float("KUBEPROBE_LIVE_PUSH_WINDOW_SECONDS", default=0.1)
KUBEPROBE_LIVE_ACCESS_REFRESH_SECONDS = env.float(
    "KUBEPROBE_LIVE_ACCESS_REFRESH_SECONDS", default=30.0
)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kubeprobe")
    except PackageNotFoundError:  # a source tree that was never installed
        return "latest"


# The image of the built-in cases (probe_sdk/cases/), used by `manage.py seed_catalog`.
KUBEPROBE_PROBE_IMAGE = env.str(
    "KUBEPROBE_PROBE_IMAGE", default=f"kubeprobe/probe:{_package_version()}"
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "apps.core",
    "apps.clusters",
    "apps.catalog",
    "apps.scheduling",
    "apps.runs",
    "apps.alerts",
    "apps.resident",
    "apps.diagnosis",
    "apps.actions",
    "apps.gating",
    "apps.dashboard",
    "apps.postrun",
]

MIDDLEWARE = [
    # First, so every log line of the request carries its id.
    "apps.core.middleware.RequestId",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.SyncChain",
]

ROOT_URLCONF = "kubeprobe_site.urls"
ASGI_APPLICATION = "kubeprobe_site.asgi.application"

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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'kubeprobe.sqlite3'}")
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
# SQLite (the quick start): a transaction that reads and then writes, while the
# worker writes too, fails at once with "database is locked" (each holds a read
# lock the other's write must wait out). IMMEDIATE takes the write lock at BEGIN,
# so transactions queue for up to `timeout` seconds instead.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": env.int("DATABASE_SQLITE_TIMEOUT", default=20)}
    )
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Under ASGI every request runs in its own thread, so persistent connections
# pile up; a psycopg pool shares a bounded set instead (Postgres only).
if DATABASES["default"]["ENGINE"].endswith("postgresql") and env.bool(
    "DATABASE_POOL", default=False
):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
        "timeout": 10,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 gives up a read after 5 s, the very time channels_redis blocks
            # waiting for a message: an idle socket then fails under load. Reads wait longer.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            # Messages waiting for one server process (all its sockets share a
            # queue). The default, 100, drops updates when a thousand runs
            # finish together; live consumers only buffer, so the queue drains fast.
            "capacity": env.int("KUBEPROBE_CHANNEL_CAPACITY", default=5000),
        },
    }
}

# Shared by every process: small coordination keys (e.g. one pending alert delivery).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("KUBEPROBE_INSTALLATION", default="kubeprobe"),
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's DatabaseScheduler, recording beat's heartbeat on each tick.
CELERY_BEAT_SCHEDULER = "apps.core.beat:Scheduler"
CELERY_TIMEZONE = env.str("TIME_ZONE", default="UTC")
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# Dispatch, alerts and housekeeping each have a queue (kubeprobe_site/queues.py);
# a worker started without -Q consumes them all (the quick start's one worker).
CELERY_TASK_QUEUES = kombu_queues(CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_ROUTES = ("kubeprobe_site.queues.route_task",)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
KUBEPROBE_API_CHECK_INTERVAL_SECONDS = env.float(
    "KUBEPROBE_API_CHECK_INTERVAL_SECONDS", default=300.0
)
# The post-run pipeline's sweep (apps/postrun, apps/alerts/judging.py): how often it passes, and
# how far behind the clock it stays so that it only passes committed runs (more
# than a report's 30 s group-commit wait plus the clock skew between hosts).
KUBEPROBE_JUDGE_SWEEP_SECONDS = env.float("KUBEPROBE_JUDGE_SWEEP_SECONDS", default=2.0)
KUBEPROBE_JUDGE_SETTLE_SECONDS = env.float("KUBEPROBE_JUDGE_SETTLE_SECONDS", default=60.0)
# Beat sends a heartbeat to every queue this often; /healthz calls beat or a
# queue stale when its heartbeat is older than KUBEPROBE_HEARTBEAT_STALE_SECONDS.
KUBEPROBE_HEARTBEAT_SECONDS = env.float("KUBEPROBE_HEARTBEAT_SECONDS", default=15.0)
KUBEPROBE_HEARTBEAT_STALE_SECONDS = env.float(
    "KUBEPROBE_HEARTBEAT_STALE_SECONDS", default=4 * KUBEPROBE_HEARTBEAT_SECONDS
)
# Resident probes (apps/resident): sample windows and batch ids are kept this many
# days (whole daily partitions are dropped), per-minute rollups longer.
KUBEPROBE_RESIDENT_RETENTION_DAYS = env.int("KUBEPROBE_RESIDENT_RETENTION_DAYS", default=30)
KUBEPROBE_RESIDENT_ROLLUP_RETENTION_DAYS = env.int(
    "KUBEPROBE_RESIDENT_ROLLUP_RETENTION_DAYS", default=90
)
KUBEPROBE_RESIDENT_JUDGE_SECONDS = env.float("KUBEPROBE_RESIDENT_JUDGE_SECONDS", default=10.0)
KUBEPROBE_RESIDENT_RESYNC_SECONDS = env.float("KUBEPROBE_RESIDENT_RESYNC_SECONDS", default=300.0)
# Housekeeping of the run loop; beat copies these into its database schedule.
CELERY_BEAT_SCHEDULE = {
    **{
        f"kubeprobe-heartbeat-{kind}": {
            "task": "apps.core.tasks.heartbeat",
            "schedule": KUBEPROBE_HEARTBEAT_SECONDS,
            "kwargs": {"kind": kind},
            "options": {"expires": KUBEPROBE_HEARTBEAT_SECONDS},
        }
        for kind in queue_kinds()
    },
    "kubeprobe-judge-finished-runs": {
        "task": "apps.postrun.tasks.sweep_finished_runs",
        "schedule": KUBEPROBE_JUDGE_SWEEP_SECONDS,
        "options": {"expires": 30},
    },
    "kubeprobe-reap-runs": {
        "task": "apps.runs.tasks.reap_runs",
        "schedule": env.float("KUBEPROBE_REAP_INTERVAL_SECONDS", default=5.0),
        "options": {"expires": 30},
    },
    "kubeprobe-cleanup-runs": {
        "task": "apps.runs.tasks.cleanup_runs",
        "schedule": 30.0,
        "options": {"expires": 60},
    },
    "kubeprobe-sweep-orphans": {
        "task": "apps.runs.tasks.sweep_orphans",
        "schedule": 600.0,
        "options": {"expires": 600},
    },
    "kubeprobe-alerts-housekeeping": {
        "task": "apps.alerts.tasks.alerts_housekeeping",
        "schedule": env.float("KUBEPROBE_ALERT_HOUSEKEEPING_SECONDS", default=15.0),
        "options": {"expires": 60},
    },
    "kubeprobe-run-partitions": {
        "task": "apps.runs.tasks.maintain_run_partitions",
        "schedule": 600.0,
        "options": {"expires": 600},
    },
    "kubeprobe-purge-runs": {
        "task": "apps.runs.tasks.purge_runs",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    # Resident probes: daily partitions ahead and retention, alert judging, ProbeConfig resync.
    "kubeprobe-resident-housekeeping": {
        "task": "apps.resident.tasks.resident_housekeeping",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    "kubeprobe-resident-judge": {
        "task": "apps.resident.tasks.judge_resident",
        "schedule": KUBEPROBE_RESIDENT_JUDGE_SECONDS,
        "options": {"expires": 60},
    },
    "kubeprobe-resident-resync": {
        "task": "apps.resident.tasks.resync_probeconfigs",
        "schedule": KUBEPROBE_RESIDENT_RESYNC_SECONDS,
        "options": {"expires": KUBEPROBE_RESIDENT_RESYNC_SECONDS},
    },
    # The learned root-cause classifier, retrained when operators labelled something new.
    "kubeprobe-retrain-classifier": {
        "task": "apps.diagnosis.tasks.retrain_classifier",
        "schedule": env.float("KUBEPROBE_CLASSIFIER_RETRAIN_SECONDS", default=3600.0),
        "options": {"expires": 3600},
    },
    # Each cluster's /version and /readyz, shown in the admin and the API.
    "kubeprobe-check-cluster-apis": {
        "task": "apps.clusters.tasks.check_cluster_apis",
        "schedule": KUBEPROBE_API_CHECK_INTERVAL_SECONDS,
        "options": {"expires": KUBEPROBE_API_CHECK_INTERVAL_SECONDS},
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# English and Simplified Chinese (docs/i18n.md). LocaleMiddleware picks the language
# from the switch's cookie, else the browser's Accept-Language, else LANGUAGE_CODE,
# which is also the language of manage.py's output (LANGUAGE_CODE=zh-hans).
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# Templates and JS strings (djangojs); each app keeps its own apps/<app>/locale.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# whitenoise scans STATIC_ROOT at start and warns when it is missing
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names need `collectstatic`; tests and trials go without.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("KUBEPROBE_STATIC_MANIFEST", default=not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Tests never run collectstatic; whitenoise then falls back to the finders.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=DEBUG)

# Security. Production values are in deploy/production.env.example.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$", r"^readyz$", r"^metrics$"]
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
X_FRAME_OPTIONS = "DENY"

# Prometheus metrics (/metrics, apps/core/metrics.py). With a token set, scrapes need
# `Authorization: Bearer <token>`; without one, a NetworkPolicy must keep others out.
KUBEPROBE_METRICS_TOKEN = env.str("KUBEPROBE_METRICS_TOKEN", default="")
# One series per (case, cluster) for the latest result, duration and alert state;
# off: only the aggregates (docs/operating.md, "Metrics", has the sizes).
KUBEPROBE_METRICS_PER_PAIR = env.bool("KUBEPROBE_METRICS_PER_PAIR", default=True)
# Runs and notifications are counted over this recent window at scrape time.
KUBEPROBE_METRICS_WINDOW_SECONDS = env.int("KUBEPROBE_METRICS_WINDOW_SECONDS", default=300)

# Admin list pages hold thousands of rows; big deletes need more fields.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.core.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.core.permissions.ModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "apps.core.filters.SearchFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    # The DRF parsers, refusing NUL characters (Postgres cannot store them).
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.JSONParser",
        "apps.core.parsers.FormParser",
        "apps.core.parsers.MultiPartParser",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "KubeProbe API",
    "DESCRIPTION": "Clusters, probe cases, bindings, probe runs and alerts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # vendored: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One enum for alert severities (severity, escalate_to, channel severities).
    "ENUM_NAME_OVERRIDES": {
        "SeverityEnum": "apps.alerts.models.Severity",
        # Several models have a `source` or `category` field with their own choices.
        "EventSourceEnum": "apps.scheduling.models.EventSource",
        "DecisionSourceEnum": "apps.gating.models.DecisionSource",
        "RootCauseSourceEnum": "apps.runs.models.RootCauseSource",
        "RootCauseEnum": "apps.runs.models.RootCause",
    },
    # 400/401/403/404/409 with their bodies on every authenticated operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.declare_error_responses",
    ],
}

# KUBEPROBE_LOG_FORMAT=json: one JSON object per line (for log collectors);
# plain otherwise. Both carry request_id, run_id and cluster where they apply
# (apps/core/logcontext.py).
KUBEPROBE_LOG_FORMAT = env.str("KUBEPROBE_LOG_FORMAT", default="plain")
if KUBEPROBE_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(
        f"KUBEPROBE_LOG_FORMAT must be plain or json, not {KUBEPROBE_LOG_FORMAT!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "apps.core.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {
            "()": "apps.core.logcontext.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "apps.core.logcontext.JsonLinesFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": KUBEPROBE_LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
