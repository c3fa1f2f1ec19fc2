# syntax=docker/dockerfile:1
# The appliance in one image; the README's "Docker" and "Production" sections explain it.
#
#   docker build -t appliance .
#   docker run -d -p 8000:8000 -v appliance-data:/data appliance    # embedded profile
#
# The Kafka profile's processor is the same image with another command (the processor has
# no web app: give it APPLIANCE_METRICS__PORT, where its /healthz and /metrics answer):
#
#   docker run -d --env-file production.env -e APPLIANCE_METRICS__PORT=9100 \
#       appliance appliance process
#
# docker-compose.yml (production) and docker-compose.local.yml (the local stack) run both.
# Stop containers with a grace period of at least 30 s (`docker stop -t 30`): a stop
# drains open requests, flushes and commits before exiting.

# --- build: the appliance and its runtime dependencies in a virtualenv --------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/appliance
COPY pyproject.toml README.md settings.toml ./
COPY appliance ./appliance
COPY plugins ./plugins
COPY templates ./templates
COPY tracker/tracker.js ./tracker/tracker.js
# The kafka extra too, so the same image runs the embedded and the Kafka profile.
RUN /opt/appliance/bin/pip install --no-cache-dir ".[kafka]"

# --- runtime: the virtualenv only (no build tools, no sources, no pip cache) --------------
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="appliance" \
      org.opencontainers.image.description="Self-hosted, real-time, cookie-less web analytics" \
      org.opencontainers.image.licenses="MIT"
ENV PATH="/opt/appliance/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APPLIANCE_DATA_DIR=/data \
    APPLIANCE_HOST=0.0.0.0 \
    APPLIANCE_PORT=8000
RUN groupadd --system --gid 10001 appliance \
    && useradd --system --uid 10001 --gid appliance --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin appliance \
    && mkdir /data \
    && chown appliance:appliance /data
COPY --from=build /opt/appliance /opt/appliance
USER 10001:10001
WORKDIR /data
# SQLite files and the generated secret key (embedded profile); mount a volume here.
VOLUME ["/data"]
EXPOSE 8000
# Asks this container's own /healthz: serve's port, or metrics.port for `appliance process`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["appliance", "healthcheck"]
STOPSIGNAL SIGTERM
CMD ["appliance", "serve"]
