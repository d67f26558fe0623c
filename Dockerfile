# lifecycle: the daemon (`lifecycle run`), its HTTP API on :8000, the default rules and
# templates under /srv/lifecycle. Build: docker build -t lifecycle .
# Any other command: docker run --rm lifecycle check   (or: db upgrade, dry-run, ...)

FROM python:3.12-slim AS build
WORKDIR /src
# Only what the wheel needs: a change to tests or docs elsewhere does not rebuild it.
COPY pyproject.toml README.md ./
COPY engine ./engine
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The API must listen beyond loopback in a container; the secret key then has to be a
    # real one (LIFECYCLE_API__SECRET_KEY), or `run` refuses to start.
    LIFECYCLE_API__HOST=0.0.0.0 \
    LIFECYCLE_API__PORT=8000 \
    LIFECYCLE_CONFIG=/srv/lifecycle/config.yaml \
    # Writable state lives in one volume; PostgreSQL deployments override the URL.
    LIFECYCLE_DATABASE__URL=sqlite:////var/lib/lifecycle/lifecycle.db \
    LIFECYCLE_MAIL__OUTBOX=/var/lib/lifecycle/outbox
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /srv/lifecycle lifecycle \
    && install -d -o lifecycle -g lifecycle /var/lib/lifecycle
WORKDIR /srv/lifecycle
# Owned by root and read-only for the service: rules and templates change by deploy or
# by a mounted volume, never from inside the running container.
COPY config.yaml ./
COPY rules ./rules
COPY templates ./templates
USER 10001:10001
VOLUME ["/var/lib/lifecycle"]
EXPOSE 8000
# Liveness only (/readyz is for load balancers): urllib, because the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LIFECYCLE_API__PORT', '8000'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["lifecycle"]
CMD ["run"]
