"""The dispatcher: every tool is mounted, exit codes, and the library never imports the commands."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import densemtl
from densemtl.cli import DATA_TOOLS, TOOLS, build_parser, main
from densemtl.errors import DataError

PACKAGE = Path(densemtl.__file__).parent


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", list(TOOLS))
def test_every_tool_module_has_add_arguments_and_run(name: str) -> None:
    module = importlib.import_module(TOOLS[name][0])
    assert callable(module.add_arguments) and callable(module.run)
    tool = _subcommands(build_parser())[name]
    assert tool.get_default("_unavailable") is None  # its add_arguments ran
    assert len(tool._actions) > 1  # options beyond --help


def test_data_tools_are_mounted() -> None:
    for action, (module, add, run, _help) in DATA_TOOLS.items():
        loaded = importlib.import_module(module)
        assert callable(getattr(loaded, add)) and callable(getattr(loaded, run)), action


def test_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import densemtl.cli.list as list_command

    def user_error(args: argparse.Namespace) -> int:
        raise DataError("some/file.png", "broken")

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(list_command, "run", user_error)
    assert main(["list", "tasks"]) == 2
    assert capsys.readouterr().err == "densemtl: error: some/file.png: broken\n"
    monkeypatch.setattr(list_command, "run", interrupted)
    assert main(["list", "tasks"]) == 130
    assert capsys.readouterr().err == "densemtl: interrupted\n"
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage errors exit 2 as well
        main(["predict", "--no-such-option"])
    assert exit_info.value.code == 2


def test_python_dash_m_densemtl_cli_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "densemtl.cli", "list", "tasks"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.split()[0] == "semseg"


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_library_modules_never_import_the_commands() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "cli" or path.name == "synthetic_cli.py":  # the commands themselves
            continue
        bad = sorted(m for m in _imports(path) if m == "densemtl.cli" or m.startswith("densemtl.cli."))
        if bad:
            offenders[str(relative)] = bad
    assert offenders == {}


def test_no_extra_entry_points_in_the_library() -> None:
    """One ``main``: the library has no ``def main`` or ``if __name__ == "__main__"`` of its own."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                offenders.append(f"{path.relative_to(PACKAGE)}: def main")
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                offenders.append(f"{path.relative_to(PACKAGE)}: __main__ block")
    assert offenders == []
