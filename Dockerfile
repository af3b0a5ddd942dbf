# syntax=docker/dockerfile:1
#
# Dragoman server image.
#
#   CPU (default):     docker build -t dragoman .
#   GPU (CUDA torch):  docker build -t dragoman-gpu --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#   Models baked in:   docker build -t dragoman --build-arg MODELS_CONFIG=path/in/repo/config.toml .
#
# Without MODELS_CONFIG the image holds no model: mount a populated Hugging Face cache at /models
# (see README, "Docker"). Either way the server runs offline (HF_HUB_OFFLINE=1).

# Both stages use this image: the venv copied from one into the other links to its Python.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# build: a virtualenv with torch and dragoman[server]; nothing else from this stage is shipped.
FROM ${PYTHON_IMAGE} AS build

# The CPU wheel index keeps the image ~2 GB smaller than PyPI's default torch (CUDA) build.
# For NVIDIA hosts pick a CUDA index (https://download.pytorch.org/whl/cuXYZ) or PyPI itself;
# those wheels bring their own CUDA libraries, so the base image stays the same.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# torch first, from its own index, so that dragoman's `torch>=` requirement is already met.
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY client/ client/
COPY service/ service/
RUN pip install --no-cache-dir "./[server]"

# ---------------------------------------------------------------------------------------------
# runtime: the venv, a non-root user, and (optionally) the models.
FROM ${PYTHON_IMAGE} AS runtime

# A TOML config inside the build context (e.g. deploy/models.toml): it becomes the image's
# config and its models are downloaded into the image. Empty: the built-in config, no models.
ARG MODELS_CONFIG=""

RUN groupadd --gid 10001 dragoman \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin dragoman \
    && install -d -o dragoman -g dragoman /models /etc/dragoman

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/models \
    DRAGOMAN_CONFIG=/etc/dragoman/config.toml \
    DRAGOMAN_HOST=0.0.0.0 \
    DRAGOMAN_PORT=50051 \
    DRAGOMAN_METRICS_PORT=9090 \
    DRAGOMAN_GRACE_PERIOD_S=30

USER 10001:10001
WORKDIR /home/dragoman

# The only step that may use the network: pull the config's models, when one is given.
RUN --mount=type=bind,source=.,target=/context \
    cp "/context/${MODELS_CONFIG:-service/dragoman_server/default_config.toml}" "${DRAGOMAN_CONFIG}" \
    && if [ -n "${MODELS_CONFIG}" ]; then dragoman models pull; fi

# From here on nothing may reach the Hub: models come from /models (baked in or a volume).
ENV HF_HUB_OFFLINE=1

# gRPC, Prometheus metrics.
EXPOSE 50051 9090

# grpc.health.v1 reports NOT_SERVING until every model is loaded and warmed up; the start
# period gives that time before a failed check counts.
HEALTHCHECK --start-period=300s --start-interval=5s --interval=30s --timeout=10s --retries=3 \
    CMD ["dragoman", "health", "--server", "127.0.0.1:50051"]

ENTRYPOINT ["dragoman"]
CMD ["serve"]
