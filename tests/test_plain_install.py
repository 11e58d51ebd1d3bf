"""A plain `pip install .` (no extras) into a fresh virtualenv runs the whole flow: every runtime import is declared.

The suite itself runs in a venv holding the dev extra, which would hide a module the product imports
but `pyproject.toml` does not declare (numpy and scipy once reached users only through the dev-only
datasketch). Here the repository is installed alone into an empty venv, resolving its dependencies
as pip does for a user, and the installed `synthgate` runs init → seeds check → generate (replay) →
check → stats → export → verify in a temporary project.

Speed (measured on the 2-core machine while it was busy with other work): resolving from the package
indexes costs 25-60 s, because their answers are not cached here, so the dependency wheels pip resolved
are kept in pytest's cache folder and later installs resolve against those alone (`--no-index`): ~11 s,
most of it unpacking numpy and scipy. When a dependency or floor changes and the kept wheels no longer
satisfy it, the install fails and the wheels are resolved again from the indexes. The flow itself takes
~15 s; installing with `--no-compile` and letting the first command write the bytecode of what it imports
saves compiling all of scipy at install time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

# The environment the session started with: pip must see the machine's real configuration (indexes,
# certificates), which lives under the HOME that the autouse fixture replaces with a temporary one.
PIP_ENV = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV")}
DEV_ONLY = ("pytest", "datasketch", "hypothesis", "ruff", "mypy")


def _pip(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], env=PIP_ENV, capture_output=True, text=True, timeout=timeout
    )


def _fill_wheelhouse(wheelhouse: Path) -> None:
    """Resolve the project's dependencies (and its build backend) from the package indexes as wheels into WHEELHOUSE."""
    build_requires = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    staging = Path(PIP_ENV.get("TMPDIR", "/tmp")) / f"synthgate-wheels-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    result = _pip("wheel", "--quiet", "--wheel-dir", str(staging), str(REPO), *build_requires, timeout=900)
    assert result.returncode == 0, "resolving the dependencies from the package indexes failed:\n" + result.stderr[-4000:]
    for wheel in staging.glob("*.whl"):
        if not wheel.name.startswith("synthgate-"):  # the project itself is always built from the working tree
            os.replace(wheel, wheelhouse / wheel.name)  # one rename each: a concurrent run never reads half a wheel
    shutil.rmtree(staging, ignore_errors=True)


def _install_plain(venv_python: Path, wheelhouse: Path) -> None:
    """`pip install REPO` into the venv, no extras, dependencies resolved by pip from the kept wheels or the indexes."""
    install = ("--python", str(venv_python), "install", "--quiet", "--no-compile", "--no-index", "--find-links", str(wheelhouse), str(REPO))
    result = _pip(*install, timeout=600) if any(wheelhouse.glob("*.whl")) else None
    if result is None or result.returncode != 0:
        _fill_wheelhouse(wheelhouse)  # first run, or the kept wheels no longer satisfy pyproject.toml
        result = _pip(*install, timeout=600)
    assert result.returncode == 0, "pip install . failed:\n" + result.stderr[-4000:]


@pytest.mark.slow
def test_plain_install_runs_the_whole_flow(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    wheelhouse = request.config.cache.mkdir("plain-install-wheelhouse")
    venv = tmp_path / "venv"
    # No pip inside the venv: the suite's pip installs into it (`--python`), which saves ~4 s of ensurepip.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    venv_python = venv / "bin" / "python"
    _install_plain(venv_python, wheelhouse)

    # The venv runs the installed copy, and the dev extra is not there to hide a missing declaration.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}
    probe = (
        "import importlib.util, generator; print(generator.__file__); "
        f"print([name for name in {DEV_ONLY!r} if importlib.util.find_spec(name)])"
    )
    where, dev_present = subprocess.run(
        [str(venv_python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert Path(where).is_relative_to(venv), where
    assert dev_present == "[]", f"dev-only packages in a plain install: {dev_present}"

    synthgate = str(venv / "bin" / "synthgate")
    project = tmp_path / "assistant"

    def run(*args: str, cwd: Path = project) -> None:
        result = subprocess.run([synthgate, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in output, f"synthgate {' '.join(args)} (exit {result.returncode}):\n{output}"

    run("init", str(project), cwd=tmp_path)
    shutil.copyfile(REPO / "seeds" / "support.jsonl", project / "seeds" / "seeds.jsonl")
    run("seeds", "check")
    run("generate", "--provider", "replay", "--replay-file", str(REPO / "demo" / "recording.jsonl"), "-n", "20", "--per-request", "5")
    run("check")
    run("stats")
    # No human has accepted anything, so the verified seeds are what the export holds.
    run("export", "--include-seeds", "-o", "out.jsonl")
    assert (project / "out.jsonl").read_text(encoding="utf-8").strip(), "the export wrote no lines"
    run("verify", "out.jsonl")
