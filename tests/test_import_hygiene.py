"""The machine side (`generator`) never imports the UI toolkit: the core stays usable without a terminal."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import generator


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(generator.__path__, "generator.") if m.name != "generator.__main__")


def test_core_modules_exist() -> None:
    assert {"generator.store.queue", "generator.cli.app", "generator.checks.runner"} <= set(core_modules())


def test_importing_every_core_module_never_imports_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.') or m.startswith('review_tui'))\n"
        "print(leaked)\n"
        "sys.exit(1 if leaked else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
