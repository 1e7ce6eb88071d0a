# Store Credits Admin: one image for web (gunicorn), worker and beat (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    STATIC_ROOT=/app/staticfiles

# WeasyPrint's system libraries and a font for PDFs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libffi8 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 1000 app \
    && useradd --system --uid 1000 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, for layer caching. pyproject.toml has `packages = []`: this installs
# the dependencies only; the app runs from the source tree copied to /app below.
COPY pyproject.toml ./
RUN pip install .

COPY . .

# Static files are collected at build time, outside var/ (a volume at run time), and
# served by WhiteNoise. The SECRET_KEY here is a build-only dummy.
RUN DEBUG=0 SECRET_KEY=build-only-dummy-key-not-used-at-run-time \
        python manage.py collectstatic --noinput \
    && mkdir -p /app/var/mail /app/var/exports \
    && chown -R app:app /app/var

USER app

EXPOSE 8000

CMD ["gunicorn", "credits_admin.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
