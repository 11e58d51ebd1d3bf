"""Import hygiene: the machine side (`generator`) never imports the UI toolkit, and nothing needs a Unix-only module to import."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import generator
import review_tui


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(generator.__path__, "generator.") if m.name != "generator.__main__")


def all_modules() -> list[str]:
    """Every module of the product, the review app included (`__main__` modules run the CLI when imported)."""
    ui = [m.name for m in pkgutil.walk_packages(review_tui.__path__, "review_tui.") if not m.name.endswith(".__main__")]
    return sorted([*core_modules(), *ui])


def test_core_modules_exist() -> None:
    assert {"generator.store.queue", "generator.cli.app", "generator.checks.runner"} <= set(core_modules())


def test_importing_every_core_module_never_imports_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_serve', 'review_tui'))\n"
        "print(leaked)\n"
        "sys.exit(1 if leaked else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_imports_without_fcntl() -> None:
    """Windows has no `fcntl`: a module that imports it at load time breaks the CLI, the store and the review app there."""
    code = (
        "import importlib, sys\n"
        "sys.modules['fcntl'] = None  # makes `import fcntl` raise ImportError, as on Windows\n"
        "failed = []\n"
        f"for name in {all_modules()!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as error:\n"
        "        failed.append(f'{name}: {error!r}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, "modules that need fcntl to import:\n" + result.stdout + result.stderr
