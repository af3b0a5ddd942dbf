#
# Dragoman server image.
#
#   CPU (default):     docker build -t dragoman .
#   GPU (CUDA torch):  docker build -t dragoman-gpu --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#   Models baked in:   docker build -t dragoman --build-arg MODELS_CONFIG=deploy/models.toml .
#
# Without MODELS_CONFIG the image holds no model: mount a populated Hugging Face cache at /models
# (see README, "Docker"). Either way the server runs offline (HF_HUB_OFFLINE=1).
#
# Builds with BuildKit on Docker 20.10 and later, offline but for the package indexes and the Hub:
# no `# syntax=` line (it would pull a frontend image), no HEALTHCHECK --start-interval (25+).
#
# Layers, from the least to the most often changed, so that a code change rebuilds only the last
# small one: the dependencies (keyed on pyproject.toml), the models (keyed on MODELS_CONFIG and
# the pull code), then dragoman itself.

# Every stage uses this image: the venv copied from one into another links to its Python.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# deps: a virtualenv with torch and the dependencies of dragoman[server], not dragoman itself.
FROM ${PYTHON_IMAGE} AS deps

# The CPU wheel index keeps the image ~2 GB smaller than PyPI's default torch (CUDA) build.
# For NVIDIA hosts pick a CUDA index (https://download.pytorch.org/whl/cuXYZ) or PyPI itself;
# those wheels bring their own CUDA libraries, so the base image stays the same.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_PROGRESS_BAR=off \
    PATH=/opt/venv/bin:$PATH

# torch first, from its own index, so that dragoman's `torch>=` requirement is already met.
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# Only pyproject.toml: empty packages (every one it lists) stand in for the code, and are
# uninstalled again.
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import pathlib, tomllib; \
c = tomllib.load(open('pyproject.toml', 'rb'))['tool']['setuptools']; \
dirs = [pathlib.Path(c['package-dir'][n.split('.')[0]], *n.split('.')[1:]) for n in c['packages']]; \
[d.mkdir(parents=True, exist_ok=True) or (d / '__init__.py').touch() for d in dirs]" \
    && touch README.md \
    && pip install --no-cache-dir "./[server]" \
    && pip uninstall --yes dragoman \
    && rm -rf /src

# ---------------------------------------------------------------------------------------------
# wheel: dragoman itself, built from the code.
FROM deps AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client/ client/
COPY service/ service/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# models: MODELS_CONFIG's Hub models in a Hugging Face cache. The only stage that may use the Hub.
FROM deps AS models

# A TOML config in deploy/ (e.g. deploy/models.toml; .dockerignore lets no other directory's
# in): it becomes the image's config and its models are downloaded into the image. Empty: the
# built-in config, no models.
ARG MODELS_CONFIG=""

ENV HF_HOME=/models
# The pull module alone (it needs no other dragoman code), so that code changes keep this layer.
COPY service/dragoman_server/__init__.py service/dragoman_server/sources.py service/dragoman_server/pull.py /opt/pull/dragoman_server/
COPY ${MODELS_CONFIG:-service/dragoman_server/default_config.toml} /opt/pull/config.toml
RUN mkdir -p /models \
    && if [ -n "${MODELS_CONFIG}" ]; then PYTHONPATH=/opt/pull python -m dragoman_server.pull /opt/pull/config.toml; fi

# ---------------------------------------------------------------------------------------------
# runtime: the venv, the models, dragoman, a non-root user.
FROM ${PYTHON_IMAGE} AS runtime

# /models and the CT2 cache belong to the server's user (`dragoman models pull`, ctranslate2
# conversions); the config does not: root-owned, read-only to the server.
RUN groupadd --gid 10001 dragoman \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin dragoman \
    && install -d -o dragoman -g dragoman /models /var/cache/dragoman \
    && install -d -m 0755 /etc/dragoman

COPY --from=deps /opt/venv /opt/venv
COPY --from=models --chown=10001:10001 /models /models
COPY --from=models /opt/pull/config.toml /etc/dragoman/config.toml

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/models \
    DRAGOMAN_CT2_CACHE=/var/cache/dragoman/ct2 \
    DRAGOMAN_CONFIG=/etc/dragoman/config.toml \
    DRAGOMAN_HOST=0.0.0.0 \
    DRAGOMAN_PORT=50051 \
    DRAGOMAN_METRICS_PORT=9090 \
    DRAGOMAN_GRACE_PERIOD_S=30

RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/dragoman-*.whl

# From here on nothing may reach the Hub: models come from /models (baked in or a volume).
# `dragoman models pull` switches it back on for itself.
ENV HF_HUB_OFFLINE=1


USER 10001:10001
WORKDIR /home/dragoman

# gRPC, Prometheus metrics.
EXPOSE 50051 9090

# The server drains on SIGTERM for DRAGOMAN_GRACE_PERIOD_S (30 s): stop with a longer timeout,
# `docker stop -t 40` or `docker run --stop-timeout 40`; Docker's default 10 s kills long calls.
STOPSIGNAL SIGTERM

# grpc.health.v1 reports NOT_SERVING until every model is loaded and warmed up; the start
# period gives that time before a failed check counts. Through sh, so that the port follows
# DRAGOMAN_PORT (docker run -e DRAGOMAN_PORT=...).
HEALTHCHECK --start-period=300s --interval=30s --timeout=10s --retries=3 \
    CMD ["sh", "-c", "exec dragoman health --server \"127.0.0.1:${DRAGOMAN_PORT}\""]

ENTRYPOINT ["dragoman"]
CMD ["serve"]
