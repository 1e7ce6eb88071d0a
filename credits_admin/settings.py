"""One settings module. Defaults are the `make run` demo (SQLite, eager Celery, file email);
production, CI and docker-compose change behaviour through environment variables only."""

from pathlib import Path

import environ
from celery.schedules import crontab  # noqa: F401  (used by later beat entries)
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for the local demo).")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_filters",
    "django_tables2",
    "credits_admin",
    "crm",
    "ledger",
    "rules",
    "refunds",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "credits_admin.urls"
WSGI_APPLICATION = "credits_admin.wsgi.application"

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
                "credits_admin.context_processors.store",
            ],
            # {% partialdef %} everywhere without {% load partials %}
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A posting waits at most this long for an account's row lock; the outermost boundary
    # (view, task, API) retries a lock timeout, never reports it as a business error.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "options", f"-c lock_timeout={env.int('DB_LOCK_TIMEOUT_MS', default=5000)}"
    )
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))

# Security: on unless DEBUG (the demo), so `check --deploy` passes in production mode.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Celery: Redis when REDIS_URL is set, otherwise tasks run eagerly in-process (the demo).
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = env("CELERY_BEAT_SCHEDULE_FILENAME", default=str(VAR_DIR / "celerybeat-schedule"))
CELERY_BEAT_SCHEDULE = {
    # Every job is idempotent and safe to run twice or concurrently (tested on PostgreSQL).
    "expire-credits": {  # hourly; lazy expiry covers the minutes in between
        "task": "ledger.tasks.sweep_expired_credits_task",
        "schedule": crontab(minute=5),
    },
    "send-expiry-reminders": {  # daily; each lot is reminded once, EXPIRY_REMINDER_DAYS ahead
        "task": "notifications.tasks.send_expiry_reminders_task",
        "schedule": crontab(hour=9, minute=0),
    },
    "purge-edit-logs": {  # daily; customer edit logs older than EDIT_LOG_RETENTION_DAYS
        "task": "notifications.tasks.purge_edit_logs_task",
        "schedule": crontab(hour=3, minute=30),
    },
    "retry-payouts": {  # daily; failed cash-refund payouts, up to 3 tries
        "task": "refunds.tasks.retry_payouts_task",
        "schedule": crontab(hour=10, minute=0),
    },
    "build-day-totals": {  # hourly; the history summary's daily rollups (a cache: ledger.rollups)
        "task": "ledger.tasks.build_day_totals_task",
        "schedule": crontab(minute=20),
    },
    "cleanup-exports": {  # daily; export files past their expiry
        "task": "ledger.tasks.cleanup_exports_task",
        "schedule": crontab(hour=4, minute=15),
    },
    "redispatch-outbox": {  # every 5 minutes; emails a lost task left pending
        "task": "notifications.tasks.redispatch_outbox_task",
        "schedule": crontab(minute="*/5"),
    },
}
# Emails (notifications): the default of the reminder lead time shown on the Emails page,
# how long an email may wait pending (or stay claimed by a dead worker) before the
# redispatch job enqueues it again, and after how many failed tries it is marked failed.
EXPIRY_REMINDER_DAYS = env.int("EXPIRY_REMINDER_DAYS", default=3)
OUTBOX_REDISPATCH_MINUTES = env.int("OUTBOX_REDISPATCH_MINUTES", default=10)
OUTBOX_SENDING_TIMEOUT_MINUTES = env.int("OUTBOX_SENDING_TIMEOUT_MINUTES", default=15)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
EDIT_LOG_RETENTION_DAYS = env.int("EDIT_LOG_RETENTION_DAYS", default=365)

# Email: one file per message under var/mail by default.
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
vars().update(env.email_url("EMAIL_URL", default=f"filemail://{VAR_DIR / 'mail'}"))
if vars()["EMAIL_BACKEND"].endswith("filebased.EmailBackend") and not vars()["EMAIL_FILE_PATH"].startswith("/"):
    # django-environ drops the leading "/" of filemail:///abs/path; put it back (else the
    # demo's mail would land in a path relative to the working directory).
    EMAIL_FILE_PATH = "/" + vars()["EMAIL_FILE_PATH"]
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="credits@store.example")

# The store.
STORE_NAME = env("STORE_NAME", default="Demo Store")
STORE_CURRENCY = env("STORE_CURRENCY", default="USD")
# Dotted path to `callable(*, source, now, **context) -> datetime | None` giving the expiry of
# credits posted without an explicit one (staff credits, refunds with store credits, rule
# grants); the rules app's expiry policy, set on the program's Expiry policy page.
LEDGER_EXPIRY_POLICY = env("LEDGER_EXPIRY_POLICY", default="rules.policy.expiry_for")

# Cash-refund payouts: the manual backend (staff transfer and confirm) or a payment gateway.
REFUNDS_PAYOUT_BACKEND = env("REFUNDS_PAYOUT_BACKEND", default="refunds.payouts.ManualBackend")
REFUNDS_GATEWAY_URL = env("REFUNDS_GATEWAY_URL", default="")
REFUNDS_GATEWAY_API_KEY = env("REFUNDS_GATEWAY_API_KEY", default="")
REFUNDS_PAYOUT_MAX_RETRIES = env.int("REFUNDS_PAYOUT_MAX_RETRIES", default=3)

# The member panel: how long a signed panel link stays valid, and which storefront origins
# may show it in an iframe (empty: none; the storefront opens it as a page).
MEMBER_PANEL_LINK_MAX_AGE = env.int("MEMBER_PANEL_LINK_MAX_AGE", default=3600)
MEMBER_PANEL_FRAME_ANCESTORS = env.list("MEMBER_PANEL_FRAME_ANCESTORS", default=[])

DJANGO_TABLES2_TEMPLATE = "django_tables2/table.html"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
