"""The house rules, read from the import statements of every file in distill/ (with ``ast``, nothing imported).

- a command module (``distill/run.py``, ``evaluate.py``, ``export.py``, ``layers.py``) never imports another;
- ``distill/cli/`` never imports a command;
- a library wing (everything else) imports neither ``distill.cli`` nor a command;
- only the commands and ``distill/cli/`` import Hydra or OmegaConf.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "distill"
COMMANDS = {"distill.run", "distill.evaluate", "distill.export", "distill.layers", "distill.__main__"}
CONFIG_LIBRARIES = ("hydra", "omegaconf")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (relative imports resolved)."""
    names: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            # from distill import run: the submodule is the import
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def violations(files: dict[str, set[str]]) -> list[str]:
    """The broken rules, as ``importer -> imported`` lines."""
    found = []
    for importer, imports in sorted(files.items()):
        is_command = importer in COMMANDS
        is_cli = within(importer, "distill.cli")
        for name in sorted(imports):
            command = next((c for c in COMMANDS if within(name, c)), None)
            if command and command != importer:
                found.append(f"{importer} -> {name} (a command is imported only by Python's -m)")
            elif within(name, "distill.cli") and not (is_command or is_cli):
                found.append(f"{importer} -> {name} (a library wing imports cli/)")
            elif name.split(".")[0] in CONFIG_LIBRARIES and not (is_command or is_cli):
                found.append(f"{importer} -> {name} (only commands and cli/ import Hydra/OmegaConf)")
    return found


def package_imports() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in PACKAGE.rglob("*.py")}


def test_the_house_rules_hold_for_distill():
    files = package_imports()
    assert COMMANDS <= set(files), "a command module is missing"
    assert any(within(name, "distill.cli") for name in files)
    assert violations(files) == []


@pytest.mark.parametrize(
    "importer, imported, rule",
    [
        ("distill.export", "distill.evaluate", "a command is imported"),
        ("distill.cli.saved_run", "distill.run", "a command is imported"),
        ("distill.report.table", "distill.layers", "a command is imported"),
        ("distill.models.factory", "distill.cli.overrides", "a library wing imports cli/"),
        ("distill.report.run_report", "omegaconf", "only commands and cli/"),
        ("distill.losses.kd", "hydra.utils", "only commands and cli/"),
    ],
)
def test_each_rule_catches_its_breach(importer, imported, rule):
    (line,) = violations({importer: {imported}})
    assert line.startswith(f"{importer} -> {imported}") and rule in line


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("distill.run", "distill.cli.teachers"),
        ("distill.run", "hydra.utils"),
        ("distill.cli.saved_run", "omegaconf"),
        ("distill.cli.teachers", "distill.models.factory"),
        ("distill.evaluate", "distill.report.evaluation_report"),
    ],
)
def test_allowed_arrows_pass(importer, imported):
    assert violations({importer: {imported}}) == []


def test_relative_and_submodule_imports_are_read(tmp_path):
    wing = tmp_path / "distill" / "report"
    wing.mkdir(parents=True)
    (wing / "table.py").write_text("from .. import run\nfrom ..cli import overrides\nimport omegaconf.errors\n")
    globals()["PACKAGE"] = tmp_path / "distill"
    try:
        found = imported_modules(wing / "table.py")
    finally:
        globals()["PACKAGE"] = Path(__file__).resolve().parent.parent / "distill"
    assert {"distill.run", "distill.cli.overrides", "omegaconf.errors"} <= found


#: the length over which a module of distill says at its top why it is that long
LONG_MODULE = 300


def test_a_long_module_says_why_at_its_top():
    package = PACKAGE
    unexplained = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > LONG_MODULE and f"Over {LONG_MODULE} lines for a reason" not in docstring:
            unexplained.append(f"{path.relative_to(package)} ({text.count(chr(10))} lines)")
    assert not unexplained, f"over {LONG_MODULE} lines without a reason at the top: " + ", ".join(unexplained)


def test_tests_mirror_every_package_of_distill():
    tests = Path(__file__).resolve().parent
    packages = {p.parent.relative_to(PACKAGE) for p in PACKAGE.rglob("__init__.py")} - {Path(".")}
    missing = sorted(str(p) for p in packages if not any((tests / p).glob("test_*.py")))
    assert not missing, f"packages of distill/ without tests in the same place under tests/: {missing}"
