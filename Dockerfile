# One image for every alliance process: Faust workers, the projector, and the one-shot
# provision/migrate steps (see docker-compose.yml). Build: docker build -t alliance-backbone:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# .dockerignore keeps .venv, .local, .git and caches out of the context.
COPY . /src
RUN pip install /src \
    && useradd --system --uid 10001 --home-dir /var/lib/alliance --create-home alliance \
    && install -d -o alliance /var/lib/alliance/faust

# Local state (the workers' RocksDB tables in faust/<app id>/<hostname>-6066, core.settings.tables_dir) lives
# in the service user's home, not beside the installed package; compose mounts a volume on faust/.
ENV ALLIANCE_LOCAL_DIR=/var/lib/alliance
WORKDIR /var/lib/alliance
USER alliance

# 6066: faust web (table views, /metrics, /healthz, /readyz); 9465: projector metrics and health
EXPOSE 6066 9465
CMD ["python", "-m", "infra", "--help"]
