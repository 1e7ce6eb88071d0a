"""Test settings: the real settings plus a few speed-ups. The database is whatever
DATABASE_URL says (PostgreSQL in CI, SQLite by default)."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("STATIC_MANIFEST", "0")

from .settings import *  # noqa: E402,F403
from .settings import VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = str(VAR_DIR / "test-media")
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

# whitenoise warns about a missing STATIC_ROOT; tests serve from the finders.
os.makedirs(STATIC_ROOT, exist_ok=True)  # noqa: F405
