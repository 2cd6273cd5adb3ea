"""The package's layout rules, checked on the source: data flows one way and no module grows past 400 lines.

The stages of ``../shared/DESIGN.md`` in pipeline order; a module may import its own stage and the ones before
it. Modules outside every stage (``cache``, ``errors``, ``paths``, ``processes``, ``separation``) sit below all
of them and import no stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "recbackdoor"
STAGES = ("data", "triggers", "attacks", "victims", "defenses", "metrics", "report", "experiments", "cli")
RANK = {stage: i for i, stage in enumerate(STAGES)}


def _imported(path: Path, package: Path) -> list[tuple[int, list[str]]]:
    """(line, module path inside the package) of every import of a recbackdoor module in ``path``."""
    parts = path.relative_to(package).with_suffix("").parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:-node.level])
                found.append((node.lineno, base + (node.module.split(".") if node.module else [])))
            elif node.module and node.module.split(".")[0] == "recbackdoor":
                found.append((node.lineno, node.module.split(".")[1:]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1:]) for a in node.names if a.name.startswith("recbackdoor.")]
    return found


def upward_imports(package: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        stage = path.relative_to(package).with_suffix("").parts[0]
        rank = RANK.get(stage, -1)  # outside every stage: below all of them
        for line, module in _imported(path, package):
            if module and module[0] in RANK and RANK[module[0]] > rank:
                out.append(f"{path.relative_to(package)}:{line} ({stage}) imports {'.'.join(module)}")
    return out


def test_no_module_imports_from_a_later_stage():
    assert upward_imports() == []


def test_the_checker_sees_an_upward_import(tmp_path):
    (tmp_path / "victims").mkdir()
    (tmp_path / "victims" / "model.py").write_text(
        "from recbackdoor.metrics.text import auc\nimport recbackdoor.data\nfrom ..report import tables\n")
    assert upward_imports(tmp_path) == ["victims/model.py:1 (victims) imports metrics.text",
                                        "victims/model.py:3 (victims) imports report"]


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}
