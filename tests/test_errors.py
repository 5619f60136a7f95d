"""One-line user errors: the first line of a message, written once for the whole package."""

from __future__ import annotations

import ast
from pathlib import Path

from distill.errors import close_matches, first_line

PACKAGE = Path(__file__).resolve().parent.parent / "distill"


def test_first_line_of_a_message_or_the_type_name():
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(ValueError("  \n")) == "ValueError"


def test_close_matches_names_the_nearest_choices():
    assert close_matches("resnet19", ["resnet18", "vgg11"]) == " (did you mean resnet18?)"
    assert close_matches("zzz", ["resnet18"]) == ""


def _copies_of_first_line(path: Path) -> list[str]:
    """Functions named like ``first_line`` and inlined ``str(x)...splitlines()[0]`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef) and "first_line" in node.name:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} def {node.name}")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "splitlines"
            and "str(" in ast.unparse(node.value.func.value)
        ):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_first_line_of_an_error_is_written_once():
    copies = [c for p in sorted(PACKAGE.rglob("*.py")) if p.name != "errors.py" for c in _copies_of_first_line(p)]
    assert copies == [], "use distill.errors.first_line: " + "; ".join(copies)


def test_the_copy_check_sees_both_forms(tmp_path):
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        module = tmp_path / "m.py"
        module.write_text(
            "def _first_line(e):\n    return str(e)\n"
            "x = str(e).strip().splitlines()[0] if str(e).strip() else 'E'\n"
        )
        assert len(_copies_of_first_line(module)) == 2
    finally:
        PACKAGE = saved
