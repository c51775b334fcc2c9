FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY connectors ./connectors
RUN pip install .
COPY config ./config
USER nobody
ENTRYPOINT []
CMD ["mood-monitor", "--help"]
