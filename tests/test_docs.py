"""The documentation describes the product: no development history in it, and every relative link resolves.

Checked: README.md, every Markdown page under docs/, and the docstrings and
comments of compound/**. History is what a reader of the product cannot use:
who measured something when ("session", "sitting"), the checkout it was
measured in ("this tree", "this VM"), what used to be true ("then the
default") and development commit hashes. Measurements name their machine,
date and command instead (docs/benchmarks.md); changes between versions go in
CHANGELOG.md.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SOURCES = sorted((ROOT / "compound").rglob("*.py"))

HISTORY = re.compile(
    r"\b(sessions?|sittings?|this tree|this vm|then the default|not explained yet)\b"
    r"|\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,12}\b",  # a commit hash: hex with digits and letters
    re.IGNORECASE,
)
# Ray's own vocabulary: a Ray session is a running Ray instance and its temp directory.
ALLOWED = re.compile(r"\bRay(?:'s)? session\b", re.IGNORECASE)


def history_words(text: str) -> list[str]:
    """The history words and commit hashes in ``text``, after Ray's own "Ray session" is set aside."""
    return [m.group(0) for m in HISTORY.finditer(ALLOWED.sub(" ", text)) if not m.group(0).isdigit()]


def docstrings_and_comments(path: Path) -> list[tuple[int, str]]:
    """``(line, text)`` of every docstring and comment of a Python file."""
    source = path.read_text()
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                for offset, line in enumerate(body[0].value.value.splitlines()):
                    found.append((body[0].lineno + offset, line))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            found.append((tok.start[0], tok.string))
    return found


def test_no_development_history_in_the_documentation():
    offending = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if history_words(line):
                offending.append(f"{page.relative_to(ROOT)}:{number}: {line.strip()}")
    for path in SOURCES:
        for number, line in docstrings_and_comments(path):
            if history_words(line):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offending, "development history in user-facing text (say what and why; measurements go in docs/):\n" + "\n".join(offending)


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str, inline_code: bool = False) -> str:
    """``text`` without fenced code blocks (and without inline code unless asked), where brackets are not links."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        kept.append("" if fenced else line if inline_code else re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown page (lower case, punctuation dropped, spaces to hyphens)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page.read_text(), inline_code=True).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        heading = m.group(1).replace("`", "")
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def broken_links(page: Path) -> list[str]:
    """One line per relative link of ``page`` whose file does not exist, or whose #anchor no heading there makes."""
    problems = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            problems.append(f"{shown(page)}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{shown(page)}: {target}: no heading #{anchor} in {shown(resolved)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_docs_pages_exist():
    assert (ROOT / "docs" / "index.md").is_file(), "docs/index.md links every page of the documentation"


def test_the_checks_themselves(tmp_path):
    """The word check finds history and spares Ray's vocabulary; anchors follow GitHub's rule; a bad link is named."""
    assert history_words("measured in Session 9 at 586740c, in one sitting") == ["Session", "586740c", "sitting"]
    assert history_words("the Ray session's directory; 2048 tokens; float16 in 1,024 rows; cafe; 0xdeadbeef") == []
    page = tmp_path / "p.md"
    page.write_text("# A `b`: c\n## A `b`: c\n```\n# not a heading\n```\n[ok](#a-b-c-1) [gone](#not-a-heading) [file](missing.md)\n")
    assert anchors(page) == {"a-b-c", "a-b-c-1"}
    assert [p.split(": ", 1)[1] for p in broken_links(page)] == [
        "#not-a-heading: no heading #not-a-heading in p.md", "missing.md: no such file"]
