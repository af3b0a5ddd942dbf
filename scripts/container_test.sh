#!/usr/bin/env bash
# Container test: builds the image from the repo's unmodified Dockerfile, runs it, and checks it
# through the real client (tests/container/check_image.py). Self-contained, for CI and by hand:
#
#   scripts/container_test.sh            # as root (apt-get, dockerd), after `make install-dev`
#
# What it sets up, when missing: Debian's docker.io and debootstrap (apt-get); a dockerd
# (--bridge=none --iptables=false: builds and containers use --network host); a Debian bookworm
# base image with Python 3.11 when python:3.11-slim-bookworm can be neither found nor pulled,
# trusting the host's CA bundle (PyPI is reached through the host's network); the torch CPU wheel
# (and its dependencies) served from a loopback PEP 503 index. The base image tarball and the
# torch index are cached under $DRAGOMAN_CI_CACHE, keyed on their recipes, and BuildKit keeps
# the layers, so a second run only rebuilds what changed.
#
# Environment: PYTHON (the venv with the client; default .venv/bin/python), DRAGOMAN_CI_CACHE
# (default /var/cache/dragoman-ci), COPY_MODEL (default ../shared/models/copy-pt-en), IMAGE
# (default dragoman:ci), TORCH_INDEX_URL (use this index instead of the loopback one), DOCKER.
set -euo pipefail

started=$(date +%s)
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CACHE=${DRAGOMAN_CI_CACHE:-/var/cache/dragoman-ci}
COPY_MODEL=${COPY_MODEL:-$ROOT/../shared/models/copy-pt-en}
IMAGE=${IMAGE:-dragoman:ci}
OFFICIAL_BASE=python:3.11-slim-bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
TORCH_VERSION=$(sed -n 's/^ARG TORCH_VERSION=//p' Dockerfile)
RUN_ID="dragoman-ci-$$"

log() { printf '[container-test %4ss] %s\n' "$(($(date +%s) - started))" "$*" >&2; }
die() {
    log "FAIL: $*"
    exit 1
}
# Every external step is bounded: a hung network or daemon fails the run instead of stalling CI.
bounded() {
    local seconds=$1
    shift
    timeout --kill-after=10 "$seconds" "$@"
}

WORK=$(mktemp -d)
INDEX_PID=""
cleanup() {
    local status=$?
    if [ -n "$INDEX_PID" ]; then kill "$INDEX_PID" 2>/dev/null || true; fi
    if [ -n "${DOCKER:-}" ]; then
        local ids
        ids=$(bounded 30 "$DOCKER" ps -aq --filter "label=$RUN_ID" 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            bounded 60 "$DOCKER" rm -f $ids >/dev/null 2>&1 || true
        fi
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

[ -x "$PYTHON" ] || die "no Python at $PYTHON (run make install-dev, or set PYTHON)"
[ -d "$COPY_MODEL" ] || die "the copy model is not at $COPY_MODEL (set COPY_MODEL)"
[ -n "$TORCH_VERSION" ] || die "no ARG TORCH_VERSION= in the Dockerfile"

# --- tools ------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    bounded 300 apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive bounded 900 \
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's client (20.10) builds with its built-in BuildKit; a newer client elsewhere on PATH
# may lack the buildx plugin that its `docker build` needs for BuildKit.
if [ -z "${DOCKER:-}" ]; then
    if dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q "ok installed"; then
        DOCKER=/usr/bin/docker
    else
        DOCKER=docker
    fi
fi
export DOCKER

# --- daemon -----------------------------------------------------------------------------------
if ! bounded 30 "$DOCKER" info >/dev/null 2>&1; then
    log "starting dockerd"
    mkdir -p "$CACHE"
    # Its own session: it outlives this script (the next run finds it, with its build cache).
    setsid nohup dockerd --bridge=none --iptables=false >>"$CACHE/dockerd.log" 2>&1 </dev/null &
    deadline=$(($(date +%s) + 90))
    until bounded 10 "$DOCKER" info >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || die "dockerd did not come up (see $CACHE/dockerd.log)"
        sleep 1
    done
fi
log "docker: $("$DOCKER" version --format 'client {{.Client.Version}}, daemon {{.Server.Version}}')"

# --- base image -------------------------------------------------------------------------------
if bounded 30 "$DOCKER" image inspect "$OFFICIAL_BASE" >/dev/null 2>&1 \
    || bounded 120 "$DOCKER" pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; then
    base=$OFFICIAL_BASE
else
    recipe="debootstrap --variant=minbase --include=$BASE_PACKAGES bookworm $DEBIAN_MIRROR; LANG=C.UTF-8"
    key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
    base=dragoman-ci/bookworm-python:$key
    if ! bounded 30 "$DOCKER" image inspect "$base" >/dev/null 2>&1; then
        tarball=$CACHE/bookworm-python-$key.tar
        if [ ! -f "$tarball" ]; then
            log "making the bookworm base with debootstrap ($OFFICIAL_BASE unavailable)"
            mkdir -p "$CACHE"
            bounded 1200 debootstrap --variant=minbase --include="$BASE_PACKAGES" \
                bookworm "$WORK/rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
                || {
                    tail -20 "$WORK/debootstrap.log" >&2
                    die "debootstrap failed"
                }
            chroot "$WORK/rootfs" apt-get clean
            rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin
            tar -C "$WORK/rootfs" --numeric-owner -cf "$tarball.partial" .
            mv "$tarball.partial" "$tarball"
            rm -rf "$WORK/rootfs"
        fi
        bounded 300 "$DOCKER" import \
            --change 'ENV LANG=C.UTF-8' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["python3"]' \
            "$tarball" "$base" >/dev/null
    fi
fi
# The host's CA bundle, trusted by the build: PyPI is reached through the host's network, which
# may present its own CA. A thin layer on the base, keyed on the bundle.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
ca_key=$( (printf '%s\n' "$base"; cat "$ca_bundle") | sha256sum | cut -c1-16)
build_base=dragoman-ci/base:$ca_key
if ! bounded 30 "$DOCKER" image inspect "$build_base" >/dev/null 2>&1; then
    mkdir -p "$WORK/base"
    cp "$ca_bundle" "$WORK/base/host-ca-certificates.crt"
    cat >"$WORK/base/Dockerfile" <<EOF
FROM $base
COPY host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EOF
    DOCKER_BUILDKIT=1 bounded 300 "$DOCKER" build -q -t "$build_base" "$WORK/base" >/dev/null
fi
python_version=$(bounded 60 "$DOCKER" run --rm --network host "$build_base" python --version 2>&1)
case "$python_version" in
    "Python 3.11."*) log "base: $base ($python_version)" ;;
    *) die "$base has $python_version, not Python 3.11" ;;
esac

# --- torch index ------------------------------------------------------------------------------
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
if [ -z "${TORCH_INDEX_URL:-}" ]; then
    index=$CACHE/torch-index-$TORCH_VERSION-cpu-cp311
    if [ ! -f "$index/simple/index.html" ]; then
        log "collecting torch==$TORCH_VERSION (CPU) and its dependencies"
        rm -rf "$index.partial" && mkdir -p "$index.partial/files"
        # The host's pip configuration knows where the CPU wheel lies (a local find-links or
        # index); the build inside Docker does not, hence this index.
        bounded 1200 "$PYTHON" -m pip download -q --only-binary=:all: \
            --dest "$index.partial/files" "torch==$TORCH_VERSION" >"$WORK/pip.log" 2>&1 || {
            tail -20 "$WORK/pip.log" >&2
            die "pip download torch==$TORCH_VERSION failed"
        }
        ls "$index.partial/files" | grep -q "^torch-$TORCH_VERSION+cpu-" \
            || die "pip download found no CPU build of torch $TORCH_VERSION"
        if ls "$index.partial/files" | grep -q '^nvidia'; then die "a CUDA torch was collected"; fi
        "$PYTHON" tests/container/simple_index.py "$index.partial"
        mv "$index.partial" "$index"
    fi
    # A fixed port: the index URL is a build argument, so a new port would rebuild the deps.
    port=${DRAGOMAN_CI_INDEX_PORT:-38517}
    if ! "$PYTHON" -c "import socket; socket.socket().bind(('127.0.0.1', $port))" 2>/dev/null; then
        port=$(free_port)
        log "port ${DRAGOMAN_CI_INDEX_PORT:-38517} is taken: index on $port (the deps layer rebuilds)"
    fi
    "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$index" "$port" \
        >"$WORK/index.log" 2>&1 &
    INDEX_PID=$!
    TORCH_INDEX_URL=http://127.0.0.1:$port/simple
    deadline=$(($(date +%s) + 30))
    until "$PYTHON" -c "import urllib.request as u; u.urlopen('$TORCH_INDEX_URL/torch/', timeout=2)" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || die "the torch index did not answer on port $port"
        sleep 0.5
    done
fi
log "torch index: $TORCH_INDEX_URL"

# --- build ------------------------------------------------------------------------------------
build() { # build LOG ARGS...
    local logfile=$1 attempt
    shift
    # A second attempt (from the layers the first one cached) rides out a transient failure of
    # the shared build host, e.g. "can't start new thread"; a real error fails twice.
    for attempt in 1 2; do
        if DOCKER_BUILDKIT=1 bounded 3000 "$DOCKER" build --network host --progress=plain \
            --build-arg PYTHON_IMAGE="$build_base" --build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL" \
            "$@" >"$logfile" 2>&1; then
            return 0
        fi
        tail -40 "$logfile" >&2
        log "docker build $* failed (attempt $attempt, log above)"
    done
    die "docker build $* failed twice"
}
build_started=$(date +%s)
build "$WORK/build.log" -t "$IMAGE" .
log "built $IMAGE in $(($(date +%s) - build_started)) s"

# The model layer is keyed on MODELS_CONFIG and the pull code only: pull a config (local
# models: nothing to download, but the pull module runs), then change the server's code and
# build again: the pull step must come from the cache.
pull_step_cached() { # LOG: the models stage's pull step came from the cache
    local step
    step=$(grep -oE '^#[0-9]+ \[models +[0-9]+/[0-9]+\] RUN mkdir -p /models' "$1" | head -1 | cut -d' ' -f1)
    [ -n "$step" ] && grep -qx "$step CACHED" "$1"
}
build "$WORK/models.log" --target models -t dragoman-ci/models:check --build-arg MODELS_CONFIG=tests/container/models.toml .
grep -q "copy-pt-en: local directory /opt/models/copy-pt-en, nothing to pull" "$WORK/models.log" \
    || pull_step_cached "$WORK/models.log" || die "the models stage did not run the pull module"
mkdir -p "$WORK/context/tests/container"
cp -r Dockerfile .dockerignore pyproject.toml README.md client service "$WORK/context/"
cp tests/container/models.toml "$WORK/context/tests/container/"
printf '\n# a code change\n' >>"$WORK/context/service/dragoman_server/server.py"
build "$WORK/models-again.log" --target models -t dragoman-ci/models:check \
    --build-arg MODELS_CONFIG=tests/container/models.toml "$WORK/context"
pull_step_cached "$WORK/models-again.log" || die "a code change re-ran the models stage's pull"
log "the model layer survives a code change"

# --- checks -----------------------------------------------------------------------------------
checks_started=$(date +%s)
PYTHONPATH="$ROOT/client${PYTHONPATH:+:$PYTHONPATH}" bounded 1200 "$PYTHON" \
    tests/container/check_image.py --docker "$DOCKER" --image "$IMAGE" --label "$RUN_ID" \
    --copy-model "$COPY_MODEL" --articles tests/data/articles
log "container checks passed in $(($(date +%s) - checks_started)) s"

size=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
log "image $IMAGE: $((size / 1000000)) MB"
log "PASS in $(($(date +%s) - started)) s"
