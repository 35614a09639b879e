# One image for all three parts; the command picks the part (see compose.yaml, deploy/k8s/).
#   docker build -t mlops-service:0.1.0 .
# Default command: the gRPC service. Others: python -m rest_gateway, python -m ui.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never
# uv from PyPI, like every other package: one package index to reach and trust, no second image.
RUN pip install uv==0.13.9
WORKDIR /src
RUN uv venv --python /usr/local/bin/python3 /opt/venv
# Dependencies before the code, so a code change reuses this layer. requirements.lock also
# pins the development tools: resolve only the runtime dependencies, constrained to the lock's
# versions, so the image runs exactly what the tests ran.
COPY pyproject.toml requirements.lock README.md ./
# --build-arg EXTRAS=ray adds Ray, for images that train on (or are) a Ray cluster.
ARG EXTRAS=""
RUN uv pip compile pyproject.toml ${EXTRAS:+--extra "$EXTRAS"} --constraint requirements.lock \
        --no-header --quiet --output-file /tmp/runtime.txt \
    && uv pip sync --python /opt/venv/bin/python /tmp/runtime.txt
COPY proto/ proto/
COPY ml_service/ ml_service/
COPY rest_gateway/ rest_gateway/
COPY ui/ ui/
COPY mlops_client/ mlops_client/
RUN uv pip install --python /opt/venv/bin/python --no-deps .

FROM ${PYTHON_IMAGE}
# tini as PID 1: it forwards SIGTERM to the part and reaps the training workers' processes; a
# Python process as PID 1 that installs no SIGTERM handler would otherwise ignore the signal.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mlops \
    && useradd --system --uid 10001 --gid mlops --create-home --home-dir /home/mlops \
        --shell /usr/sbin/nologin mlops \
    && mkdir /data \
    && chown mlops:mlops /data
# /data is owned by the service's user in the image, so a new named volume mounted there
# starts with that owner too (Docker copies it); Kubernetes uses fsGroup for the same end.
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLOPS_DATA_DIR=/data \
    MLOPS_HOST=0.0.0.0 \
    MLOPS_GATEWAY_HOST=0.0.0.0 \
    MLOPS_UI_HOST=0.0.0.0
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/mlops
EXPOSE 50051 8000 7860
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "ml_service"]
