# The mood-monitor image: the exact dependency versions of requirements.lock (hash-checked),
# then the monitor and connectors packages; a non-root user; no configuration and no secret
# inside (compose mounts config/monitor.yaml and gives each service its secrets at run time).
# The build context is an allow-list (.dockerignore). Base image: an exact release tag; a
# digest could not be resolved where this file was written (no image registry reachable), so
# add `@sha256:...` from `docker buildx imagetools inspect python:3.11.14-slim-bookworm` to pin
# it by content (docs/security.md "Supply chain").
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/mood
# this layer is reused until requirements.lock changes (make lock)
COPY requirements.lock /tmp/requirements.lock
RUN /opt/mood/bin/pip install --require-hashes -r /tmp/requirements.lock
COPY pyproject.toml README.md LICENSE /src/
COPY monitor /src/monitor
COPY connectors /src/connectors
# the project itself, resolving nothing (setuptools comes from the lock), then a consistency check
RUN /opt/mood/bin/pip install --no-deps --no-build-isolation /src && /opt/mood/bin/pip check

FROM python:3.11.14-slim-bookworm
ENV PYTHONUNBUFFERED=1 PATH=/opt/mood/bin:$PATH HOME=/home/mood
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/mood \
        --shell /usr/sbin/nologin mood \
    && mkdir -p /home/mood/.cache/huggingface /app/config \
    && chown -R mood:mood /home/mood
COPY --from=build /opt/mood /opt/mood
WORKDIR /app
USER 10001:10001
ENTRYPOINT []
CMD ["mood-monitor", "--help"]
