# syntax=docker/dockerfile:1
# First version: the embedded profile in one container. `docker run -p 8000:8000 -v data:/data IMAGE`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md settings.toml ./
COPY appliance ./appliance
COPY plugins ./plugins
COPY templates ./templates
COPY tracker ./tracker
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data appliance \
    && mkdir /data && chown appliance /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER appliance
WORKDIR /data
ENV APPLIANCE_DATA_DIR=/data APPLIANCE_HOST=0.0.0.0 APPLIANCE_PORT=8000
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["appliance", "serve"]
