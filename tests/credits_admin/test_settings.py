"""The settings module, imported fresh in a subprocess (the test run itself uses
credits_admin.settings_test, which fills in test defaults)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

BASE_DIR = django_settings.BASE_DIR
# settings_test.py puts these into os.environ; the subprocess must start without them.
_SETTINGS_VARS = ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "STATIC_MANIFEST",
                  "CSRF_TRUSTED_ORIGINS", "DJANGO_ALLOW_ASYNC_UNSAFE")
_SETTINGS_PREFIXES = ("SECURE_", "SESSION_COOKIE_", "CSRF_COOKIE_")
PRODUCTION_SECRET = "^^viSDb_9S1dT%yR4MNyzEL#@2uCVvTeyGPyd3qALZj@uk6iDGTekf1^Rxx%"  # 60 random characters


def _run_manage(*args, **env_vars):
    env = {k: v for k, v in os.environ.items()
           if k not in _SETTINGS_VARS and not k.startswith(_SETTINGS_PREFIXES)}
    env.update(DJANGO_SETTINGS_MODULE="credits_admin.settings", **env_vars)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)


def _dotenv_sets(*names):
    dotenv = BASE_DIR / ".env"
    if not dotenv.exists():
        return False
    return any(line.split("=", 1)[0].strip() in names for line in dotenv.read_text().splitlines())


def test_production_secret_is_60_characters():
    assert len(PRODUCTION_SECRET) == 60


def test_check_deploy_passes_in_production_mode():
    # when
    result = _run_manage("check", "--deploy", "--fail-level", "WARNING",
                         DEBUG="0", SECRET_KEY=PRODUCTION_SECRET, ALLOWED_HOSTS="admin.example.com")
    # then
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_with_a_weak_secret_key():
    # when
    result = _run_manage("check", "--deploy", "--fail-level", "WARNING",
                         DEBUG="0", SECRET_KEY="short", ALLOWED_HOSTS="admin.example.com")
    # then
    assert result.returncode != 0
    assert "security.W009" in result.stderr


@pytest.mark.skipif(_dotenv_sets("SECRET_KEY", "DEBUG"), reason="a local .env sets SECRET_KEY or DEBUG")
def test_settings_without_secret_key_and_debug_fail_with_a_clear_message():
    # when
    result = _run_manage("check")
    # then
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set SECRET_KEY (or DEBUG=1 for the local demo)." in result.stderr


@pytest.mark.skipif(_dotenv_sets("SECRET_KEY"), reason="a local .env sets SECRET_KEY")
def test_settings_in_debug_mode_run_without_a_secret_key():
    # when
    result = _run_manage("check", DEBUG="1")
    # then
    assert result.returncode == 0, result.stderr
