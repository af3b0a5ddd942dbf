"""`pip install dragoman` (no extras) into a fresh venv is the client alone: grpcio and protobuf,
no torch or transformers, and it talks to the real test server."""

import os
import shutil
import subprocess
import venv

from conftest import ROOT, needs_copy_model

pytestmark = needs_copy_model

CLIENT_SCRIPT = """
import sys

import dragoman

heavy = {"torch", "transformers", "dragoman_server", "numpy"} & set(sys.modules)
assert not heavy, heavy
assert dragoman.__file__.startswith(sys.prefix), dragoman.__file__  # the installed copy
address = sys.argv[1]
with dragoman.Client(address, timeout=60) as client:
    [result] = client.translate("Bom dia, Lisboa. Como estão todos hoje?", to="en", source="pt")
    assert result.text == "Bom dia, Lisboa. Como estão todos hoje?", result
    assert client.health() == "SERVING"
heavy = {"torch", "transformers", "dragoman_server", "numpy"} & set(sys.modules)
assert not heavy, heavy
print("ok", dragoman.__version__)
"""


def _source_tree(destination):
    """The files a build needs, copied out of the checkout (so the build writes nothing there)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    destination.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, destination / name)
    for name in ("client", "service"):
        shutil.copytree(ROOT / name, destination / name, ignore=ignore)
    return destination


def test_base_install_is_the_client_alone(server, tmp_path):
    source = _source_tree(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*args, check=True, timeout=600):
        done = subprocess.run(
            [*map(str, args)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
        return done

    run(python, "-m", "pip", "install", "--quiet", source)

    done = run(python, "-c", CLIENT_SCRIPT, server.address)
    assert done.stdout.startswith("ok ")
    for package in ("torch", "transformers", "grpcio-health-checking"):
        assert run(python, "-m", "pip", "show", package, check=False).returncode != 0, package

    # The console script works, and `serve` asks for the extra instead of failing obscurely.
    dragoman = env_dir / "bin" / "dragoman"
    assert run(dragoman, "health", "--server", server.address).stdout == "SERVING\n"
    done = run(dragoman, "serve", "--port", "0", check=False, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "dragoman serve needs the server extra: pip install 'dragoman[server]'\n"
    assert "Traceback" not in done.stderr
