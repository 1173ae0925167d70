"""The docstrings are written in one syntax, Markdown with numpy-style sections, which is
what mkdocstrings renders; the built site is checked for leftovers by tests/site_check.py."""

import ast
import re
from pathlib import Path

import pytest
from site_check import problems

PACKAGE = Path(__file__).parent.parent / "xpbp"
ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`|``")
# In a numpy-style section "name : text" puts text in the type slot, rendered as code.
TYPED = re.compile(r"^(\s*)[A-Za-z_]\w*(?:, [A-Za-z_]\w*)* : ")


def docstrings():
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node, clean=True)
                if text:
                    yield f"{path.name}:{getattr(node, 'name', '<module>')}", text


def test_docstrings_hold_no_restructuredtext_roles_or_double_backticks():
    bad = [(where, m.group()) for where, text in docstrings() for m in ROLE.finditer(text)]
    assert not bad, bad[:10]


def test_parameter_sections_put_descriptions_below_the_names():
    bad = []
    for where, text in docstrings():
        lines = text.splitlines()
        for i, line in enumerate(lines[:-1]):
            if line.strip() in ("Parameters", "Attributes", "Returns") and set(lines[i + 1].strip()) == {"-"}:
                section = lines[i + 2 :]
                ends = next((k for k, l in enumerate(section) if l.strip() and set(l.strip()) == {"-"}), len(section))
                bad += [(where, l) for l in section[:ends] if TYPED.match(l)]
    assert not bad, bad[:10]


@pytest.mark.parametrize(
    "html, found",
    [
        ("<p>σ: ``&#34;sigmoid&#34;`` here</p>", 2),  # its opening and closing pair
        ("<p>see :class:`History`</p>", 1),
        ("<p>\n==========  ====\nsizes  int\n==========  ====\n</p>", 2),
        ("<p><code>sigmoid</code> and <code>History</code></p>", 0),
        ("<script>var s = '``';</script><p>fine</p>", 0),
    ],
)
def test_the_site_check_finds_raw_restructuredtext(html, found):
    assert len(problems(html)) == found
