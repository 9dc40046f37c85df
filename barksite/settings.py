"""barksite settings: the only settings module. Every knob is an environment variable (README, "Configuration")."""

import hashlib
import ipaddress
import tempfile
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from barksite.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_optional_float,
    env_optional_int,
    env_str,
    env_tristate,
    local_secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Django core -------------------------------------------------------------------------------------

# DEBUG shows tracebacks and settings to whoever triggers an error: only when a developer asks for it.
DEBUG = env_bool("DJANGO_DEBUG", False)
_THIS_MACHINE = ["localhost", "127.0.0.1", "[::1]", "testserver"]
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", _THIS_MACHINE)
# Serving only this machine's own names (bin/serve on 127.0.0.1, the tests) is a local run; any other host
# name means a deployment, which must bring its own secret and (by default) HTTPS.
LOCAL_ONLY = set(ALLOWED_HOSTS) <= set(_THIS_MACHINE)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or LOCAL_ONLY):
        raise ImproperlyConfigured(
            f"DJANGO_ALLOWED_HOSTS serves {', '.join(ALLOWED_HOSTS)}, so DJANGO_SECRET_KEY must be set to a long "
            "random value (the same on every machine)."
        )
    SECRET_KEY = local_secret_key(BASE_DIR / ".cache" / "secret_key")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets, served locally: /api/docs works offline
    "synthesis",  # before django_q: its qcluster command (which starts the Bark runner) replaces django_q's
    "django_q",
]

MIDDLEWARE = [
    "synthesis.http.metrics.HttpMetricsMiddleware",  # first, so it sees every response
    "barksite.handlers.JsonErrorsMiddleware",  # next: sees every error response under /api/ and /v1/
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

CSRF_FAILURE_VIEW = "barksite.handlers.csrf_failure"

# --- HTTPS behind a TLS-terminating proxy ----------------------------------------------------------------
# `auto`: on when DEBUG is off and the site serves a name other than this machine's. bin/serve and the
# tests serve plain HTTP on 127.0.0.1, where a browser would never send Secure cookies back (signing in
# would fail) and a redirect to https:// would lead nowhere.
_HTTPS = env_tristate("DJANGO_HTTPS", "auto")
HTTPS = _HTTPS == "true" or (_HTTPS == "auto" and not DEBUG and not LOCAL_ONLY)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]  # health probes come over plain HTTP from inside the network
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
# The header by which the proxy says the client used https. The proxy must set it on every request (and
# so overwrite a client's own); set DJANGO_PROXY_SSL_HEADER= (empty) when no proxy is in front.
_PROXY_SSL_HEADER = env_str("DJANGO_PROXY_SSL_HEADER", "X-Forwarded-Proto" if HTTPS else "").strip()
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")

ROOT_URLCONF = "barksite.urls"
WSGI_APPLICATION = "barksite.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

# --- Database ----------------------------------------------------------------------------------------
# SQLite in WAL mode with IMMEDIATE transactions: the web process and the django-q2 workers (which use
# the same database as their broker) write concurrently without "database is locked".

_SQLITE_PATH = env_str("BARK_SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
_TEST_SQLITE_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
_CHECKOUT_ID = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8]
_database_url = env_str("DATABASE_URL", "")
if _database_url:
    try:
        DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)}
    except Exception as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL ({exc}).") from None
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _SQLITE_PATH,
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # Tests get a file too (one per test worker), not Django's default in-memory database: that one is shared
            # between threads through SQLite's shared cache, whose table locks fail a second writer or a reader at
            # once instead of waiting the timeout above, and a job run in a thread beside the stream that polls it
            # (the OpenAI endpoint with no worker) could die at its claim and leave the stream waiting. The file goes
            # to memory-backed /dev/shm where there is one (on disk the suite took twice as long), named after this
            # checkout so that two checkouts' test runs do not share it.
            "TEST": {"NAME": str(_TEST_SQLITE_DIR / f"barksite-test-{_CHECKOUT_ID}.sqlite3")},
        }
    }

# --- Auth, static and media --------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "job-new"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve static files that were not collected too (a fresh checkout, the live tests); collected ones win.
WHITENOISE_USE_FINDERS = True

# Artifacts live under BARK_OUTPUT_ROOT, Django's media root. They are served only through views that
# check who may see the job, never as open media URLs.
MEDIA_ROOT = Path(env_str("BARK_OUTPUT_ROOT", str(BASE_DIR / "outputs"))).resolve()
MEDIA_URL = "/media/"
# With BARK_S3_BUCKET, artifacts live in an S3-compatible bucket instead (AWS, MinIO, R2, Ceph), so web
# hosts and worker hosts on different machines share them. Every read and write goes through Django's
# storage API; `file_overwrite` keeps a job's artifact names stable when a requeued job writes them again.
BARK_S3_BUCKET = env_str("BARK_S3_BUCKET", "")
BARK_S3_PRESIGNED = env_bool("BARK_S3_PRESIGNED", False)
BARK_S3_URL_EXPIRE_S = env_int("BARK_S3_URL_EXPIRE_S", 300, minimum=10, maximum=7 * 24 * 3600)
if BARK_S3_BUCKET:
    _s3_key, _s3_secret = env_str("AWS_ACCESS_KEY_ID", ""), env_str("AWS_SECRET_ACCESS_KEY", "")
    if bool(_s3_key) != bool(_s3_secret):
        raise ImproperlyConfigured(
            "Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (then boto3's own credential "
            "chain applies, e.g. an instance role)."
        )
    _s3_endpoint = env_str("AWS_S3_ENDPOINT_URL", "")
    if _s3_endpoint and not _s3_endpoint.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"AWS_S3_ENDPOINT_URL={_s3_endpoint!r} must start with http:// or https://.")
    _DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BARK_S3_BUCKET,
            "endpoint_url": _s3_endpoint or None,
            "access_key": _s3_key or None,
            "secret_key": _s3_secret or None,
            "region_name": env_str("AWS_S3_REGION_NAME", "") or None,
            "location": env_str("BARK_S3_PREFIX", "").strip("/"),
            # MinIO and most self-hosted services want path-style URLs; AWS accepts both.
            "addressing_style": "path" if _s3_endpoint else None,
            "signature_version": "s3v4",
            "file_overwrite": True,
            "default_acl": None,
            "querystring_expire": BARK_S3_URL_EXPIRE_S,
        },
    }
else:
    _DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Cache (rate limits) -----------------------------------------------------------------------------
# The rate limits' moving windows (synthesis/api/limits.py) live here, shared by every gunicorn worker:
# Redis when REDIS_URL is set (every machine); otherwise diskcache's Django backend, a SQLite file whose
# transactions every process of the machine shares.

REDIS_URL = env_str("REDIS_URL", "")
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "diskcache.DjangoCache",
            "LOCATION": env_str("BARK_CACHE_DIR", str(BASE_DIR / ".cache" / "django")),
            "OPTIONS": {"size_limit": 2**26},
        }
    }
RATELIMIT_VIEW = "synthesis.api.errors.ratelimited"
# While the rate limits' store (Redis with REDIS_URL) is unreachable: false (closed) answers rate-limited routes with
# a 503 and Retry-After; true (open) lets them through uncounted.
RATELIMIT_FAIL_OPEN = env_bool("BARK_RATE_LIMIT_FAIL_OPEN", False)

# --- barksite ----------------------------------------------------------------------------------------

BARK_MODELS_AVAILABLE = env_tristate("BARK_MODELS_AVAILABLE", "auto")
BARK_MODEL = env_str("BARK_MODEL", "suno/bark-small")
BARK_DEVICE = env_choice("BARK_DEVICE", "auto", {"auto", "cpu", "cuda", "mps"})
# Cloning voices from the audio (synthesis/engines/bark/cloning.py): HuBERT (a hub id or a directory) and its quantizer
# (a file, or owner/name/file on the hub). Used when both resolve locally, as BARK_MODEL does; "" turns it off.
BARK_HUBERT_MODEL = env_str("BARK_HUBERT_MODEL", "facebook/hubert-base-ls960")
BARK_HUBERT_QUANTIZER = env_str(
    "BARK_HUBERT_QUANTIZER", "GitMylo/bark-voice-cloning/quantifier_hubert_base_ls960_14.pth"
)
# Bark's weights: auto = float16 on CUDA, bfloat16 on CPUs with AMX or where bf16 measures 2x faster than float32 at
# load, else float32 (docs/precision.md).
BARK_DTYPE = env_choice("BARK_DTYPE", "auto", {"auto", "float32", "bfloat16", "float16", "int8"})
# A benchmarking knob, not for production: every Bark segment gets exactly this many semantic tokens (random-weight
# checkpoints never stop by themselves). 0 (the default) leaves the checkpoint's own limits; 768 is Bark's cap.
BARK_FORCE_SEMANTIC_TOKENS = env_int("BARK_FORCE_SEMANTIC_TOKENS", 0, minimum=0, maximum=768)
# Bark segments generated together at most, across all running jobs (one batch on one device). 8 suits a 2-core CPU
# (docs/bark-batching.md); a GPU wants more (bench/gpu.sh). A batch that runs out of memory is split by itself.
BARK_MAX_BATCH = env_int("BARK_MAX_BATCH", 8, minimum=1, maximum=256)
# Coarse tokens Bark generates per window before it re-reads its whole context. 60, Bark's default, gives exactly the
# library's tokens; up to 138 (upstream Bark's own bound with its 630-token history) re-reads less often, which is
# faster and changes the tokens (docs/bark-batching.md, "Longer coarse windows").
BARK_COARSE_WINDOW = env_int("BARK_COARSE_WINDOW", 60, minimum=60, maximum=138)
# Bark's fine stage: `full` pads every segment to the fine model's 1024-frame window as Bark and transformers do (their
# codes exactly); `real` runs it on the segment's own frames: faster, and codebooks 3-8 differ (docs/fidelity.md).
BARK_FINE_WINDOW = env_choice("BARK_FINE_WINDOW", "full", {"full", "real"})
# Sampling of Bark's semantic and coarse stages. Unset: the checkpoint's generation config when it sets them, else
# upstream Bark's defaults (no top-k, no top-p; EOS once its probability passes 0.2). BARK_TOP_K=0, BARK_TOP_P=1 and
# BARK_MIN_EOS_P=0 turn each off (docs/fidelity.md, "Sampling").
BARK_TOP_K = env_optional_int("BARK_TOP_K", minimum=0, maximum=100_000)
BARK_TOP_P = env_optional_float("BARK_TOP_P", minimum=0.0, maximum=1.0, exclude_minimum=True)
BARK_MIN_EOS_P = env_optional_float("BARK_MIN_EOS_P", minimum=0.0, maximum=1.0)
BARK_DEFAULT_ENGINE = env_choice("BARK_DEFAULT_ENGINE", "auto", {"auto", "bark", "piper"})
BARK_MAX_QUEUE_SIZE = env_int("BARK_MAX_QUEUE_SIZE", 8, minimum=1)
BARK_MAX_CONCURRENCY = env_int("BARK_MAX_CONCURRENCY", 4, minimum=1, maximum=64)
# auto: `manage.py qcluster` starts one Bark runner (the only process that loads the model) when Bark can run, and
# its workers send Bark segments there; off: each worker process loads its own model (as in a plain process).
BARK_RUNNER = env_choice("BARK_RUNNER", "auto", {"auto", "off"})
# Set by qcluster for its workers (the runner's socket); leave unset.
BARK_RUNNER_SOCKET = env_str("BARK_RUNNER_SOCKET", "")
# How long a job waits for a runner that is still loading or restarting before it goes back to the queue.
BARK_RUNNER_WAIT_S = env_int("BARK_RUNNER_WAIT_S", 600, minimum=1)
BARK_RATE_LIMIT_PER_MIN = env_int("BARK_RATE_LIMIT_PER_MIN", 30, minimum=1)
BARK_API_KEY = env_str("BARK_API_KEY", "") or None
BARK_MAX_PROMPT_CHARS = env_int("BARK_MAX_PROMPT_CHARS", 5000, minimum=1, maximum=100_000)
BARK_MAX_BODY_BYTES = env_int("BARK_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
# A job may run this long before django-q2 kills its worker. The slowest expected job (5,000 characters
# with bark-small on a CPU) takes about an hour; on a GPU a few minutes.
BARK_JOB_TIMEOUT = env_int("BARK_JOB_TIMEOUT", 3600, minimum=10)
# How long POST /v1/audio/speech waits for its job. OpenAI's clients give up after 600 s and then retry
# (a second job), so the default stays below that.
BARK_SPEECH_TIMEOUT = env_int("BARK_SPEECH_TIMEOUT", 540, minimum=1)
BARK_JOB_MAX_ATTEMPTS = env_int("BARK_JOB_MAX_ATTEMPTS", 2, minimum=1, maximum=10)
BARK_LOG_HOOK = env_str("BARK_LOG_HOOK", "") or None
BARK_METRICS_HOOK = env_str("BARK_METRICS_HOOK", "") or None

DATA_UPLOAD_MAX_MEMORY_SIZE = BARK_MAX_BODY_BYTES

# /metrics (Prometheus): open to a bearer token equal to BARK_METRICS_TOKEN, or to direct connections from
# the networks in BARK_METRICS_ALLOW (addresses or CIDRs; loopback by default, "" for none).
BARK_METRICS_TOKEN = env_str("BARK_METRICS_TOKEN", "")
BARK_METRICS_ALLOW = env_list("BARK_METRICS_ALLOW", ["127.0.0.0/8", "::1/128"])
for _network in BARK_METRICS_ALLOW:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"BARK_METRICS_ALLOW holds {_network!r}, which is not an address or network; use e.g. 10.0.0.0/8,::1."
        ) from None

# --- django-q2 ---------------------------------------------------------------------------------------
# The job row is the truth, not the queue: django-q2 may deliver a task twice, so tasks claim their job
# with a conditional update, and the queue never retries on its own (max_attempts=1); the sweep
# (synthesis/recovery.py) requeues or fails jobs whose worker died and gives every queued job a task.
# `retry` must exceed `timeout` or a slow task runs twice (docs/worker-recovery.md).

# How often a running job's worker touches its heartbeat; a job silent for 4 beats is requeued, and
# `manage.py runworkers` sweeps at this interval.
BARK_HEARTBEAT_S = env_int("BARK_HEARTBEAT_S", 10, minimum=1, maximum=300)
# The broker: the database (default) or Redis. Several sites may share one Redis with their own names.
BARK_BROKER_URL = env_str("BARK_BROKER_URL", "")
BARK_QUEUE_NAME = env_str("BARK_QUEUE_NAME", "barksite")
if BARK_BROKER_URL and not BARK_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        f"BARK_BROKER_URL={BARK_BROKER_URL!r} is not a Redis URL; use redis://host:6379/0 (or unset it to use "
        "the database as the broker)."
    )
if not BARK_QUEUE_NAME.replace("-", "").replace("_", "").isalnum():
    raise ImproperlyConfigured(f"BARK_QUEUE_NAME={BARK_QUEUE_NAME!r} may hold only letters, digits, '-' and '_'.")

Q_CLUSTER = {
    "name": BARK_QUEUE_NAME,
    **({"redis": BARK_BROKER_URL} if BARK_BROKER_URL else {"orm": "default"}),
    "workers": BARK_MAX_CONCURRENCY,
    # A worker that loads Bark itself (BARK_RUNNER=off) must never be recycled: every restart reloads the model.
    "recycle": 50 if BARK_RUNNER == "auto" else 1_000_000_000,
    "timeout": BARK_JOB_TIMEOUT,
    "retry": BARK_JOB_TIMEOUT + 120,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 500,
    "catch_up": False,
    "poll": 0.5,
    "label": "Task queue",
}

# --- Engine faults -----------------------------------------------------------------------------------
# A circuit breaker per engine (synthesis/breaker.py): after this many consecutive engine faults it opens
# for the cool-down; then one trial job half-opens it. While open, jobs that named the engine wait
# (`queue`) or fail at once with the reason (`fail`); jobs on `auto` go to another engine.
BARK_BREAKER_THRESHOLD = env_int("BARK_BREAKER_THRESHOLD", 3, minimum=1)
BARK_BREAKER_COOLDOWN_S = env_int("BARK_BREAKER_COOLDOWN_S", 120, minimum=1)
BARK_BREAKER_WHILE_OPEN = env_choice("BARK_BREAKER_WHILE_OPEN", "queue", {"queue", "fail"})
# Transient faults (lost database connection, S3 or Redis errors, out of memory) are retried inside the
# job's attempt this many times, after BASE * 2^n milliseconds with +-50% jitter.
BARK_RETRY_ATTEMPTS = env_int("BARK_RETRY_ATTEMPTS", 3, minimum=0, maximum=10)
BARK_RETRY_BASE_MS = env_int("BARK_RETRY_BASE_MS", 1000, minimum=1, maximum=60_000)
# Fault injection for tests and drills: an engine name makes that engine fail every job with an engine
# fault (`piper`), or with `:transient` fail that many times with a lost-connection error first
# (`piper:transient=2`). Never set in production.
BARK_FAULT_INJECTION = env_str("BARK_FAULT_INJECTION", "")

# --- REST framework ----------------------------------------------------------------------------------

REST_FRAMEWORK = {
    # A key first; without one, a signed-in session (the web UI's JSON calls; CSRF-checked).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "synthesis.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["synthesis.api.auth.HasApiAccess"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["synthesis.api.content.BoundedJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "synthesis.api.content.LenientContentNegotiation",
    "EXCEPTION_HANDLER": "synthesis.api.errors.exception_handler",
    # `?format=` is ours (the audio format of streams), not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "barksite API",
    "DESCRIPTION": "Self-hosted Bark text-to-audio: queue jobs, poll them, download WAV/MP4/captions.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "synthesis.models.Job.Status",
        "VoiceStatusEnum": "synthesis.models.Voice.Status",
        # OpenAI's object names (synthesis/api/openai_voices.py), each an enum of one value.
        "AudioVoiceObjectEnum": ["audio.voice"],
        "AudioVoiceDeletedObjectEnum": ["audio.voice.deleted"],
        "AudioVoiceConsentObjectEnum": ["audio.voice_consent"],
        "ListObjectEnum": ["list"],
        "AudioVoiceTypeEnum": ["audio_sample"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "synthesis.api.schema.add_common_responses",  # 401/403/414/429 wherever they can happen
    ],
    "SERVE_AUTHENTICATION": [],  # the schema and docs are public, whatever key a browser sends
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Everything worth a look goes to stderr (gunicorn's and qcluster's error stream), with DEBUG on or off:
# Django's own default sends request errors only to console under DEBUG and to e-mail otherwise, so a
# 500 in production would leave no trace. django.request logs every unexpected exception with its
# traceback at ERROR (and 4xx answers at WARNING); django.security logs refused hosts and CSRF failures.
_LOG_LEVEL = env_choice("BARK_LOG_LEVEL", "info", {"debug", "info", "warning", "error"}).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "synthesis": {"handlers": ["stderr"], "level": _LOG_LEVEL, "propagate": False},
        # django-q2 adds its own INFO handler only when no logging is configured; keep what it said.
        "django-q": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
