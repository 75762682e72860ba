"""The docs match the code: docs/cli.md is the live --help, README's command reference names every
command (and only real ones), README stays short, and relative links in the docs lead somewhere."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCRIPT = ROOT / "docs" / "make_reference.py"
MAX_README_LINES = 300       # a user's guide on one page; method and experiments live in docs/



@pytest.fixture(scope="module")
def reference():
    """docs/make_reference.py as a module. It fixes COLUMNS and colour in os.environ when it is
    imported; those variables are put back afterwards so that other tests see the environment they
    had."""
    names = ("COLUMNS", "TERMINAL_WIDTH", "NO_COLOR", "FORCE_COLOR")
    saved = {name: os.environ.get(name) for name in names}
    spec = importlib.util.spec_from_file_location("ccvae_docs_make_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return module


def _section(text: str, title: str) -> str:
    """The body of the `## title` section of a Markdown text (up to the next `## ` heading)."""
    match = re.search(rf"^## {re.escape(title)}[ \t]*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _strip_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.M | re.S)


# ------------------------------------------------------------------------------------------------
# (a) docs/cli.md is what docs/make_reference.py writes now
# ------------------------------------------------------------------------------------------------

def test_cli_reference_is_up_to_date():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr
                                    + "\ndocs/cli.md is stale: run `python docs/make_reference.py`")


def test_cli_reference_has_every_command(reference):
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for path, _, _ in reference.iter_commands():
        assert f"\n## {' '.join(path)}\n" in text
        assert f"Usage: {' '.join(path)} " in text


# ------------------------------------------------------------------------------------------------
# (b) README's command reference and the command tree agree
# ------------------------------------------------------------------------------------------------

def _named_commands(section: str) -> list[str]:
    """Every backticked `ccvae ...` span in the section."""
    return [span.strip() for span in re.findall(r"`(ccvae(?:\s[^`]*)?)`", section)]


def _resolve(tokens: list[str], tree: dict[tuple[str, ...], object], reference) -> tuple[str, ...] | None:
    """The command path that a command line names (`ccvae data check DATA` -> ccvae data check), or
    None when a word after a group is not one of its sub-commands."""
    path = ("ccvae",)
    for token in tokens[1:]:
        if not reference.is_group(tree[path]) or token.startswith("-"):
            break
        if path + (token,) not in tree:
            return None
        path = path + (token,)
    return path


def test_readme_command_reference_names_every_command_with_its_summary(reference):
    section = _section(README.read_text(encoding="utf-8"), "Command reference")
    tree = {path: command for path, command, _ in reference.iter_commands()}
    rows: dict[tuple[str, ...], str] = {}
    for line in section.splitlines():
        first = re.match(r"\|?\s*`(ccvae[^`]*)`", line)
        if first:
            path = _resolve(first.group(1).split(), tree, reference)
            if path is not None:
                rows.setdefault(path, line)
    for path, command in tree.items():
        if path == ("ccvae",) or reference.is_group(command):
            continue
        name = " ".join(path)
        assert path in rows, f"README's command reference has no line for `{name}`"
        summary = reference.summary(command).replace("|", r"\|")
        assert summary in rows[path], f"README's line for `{name}` lacks its --help summary: {summary!r}"
    groups = [p for p, c in tree.items() if reference.is_group(c) and p != ("ccvae",)]
    for group in groups:
        assert any(p[: len(group)] == group for p in rows), f"`{' '.join(group)}` is missing from README"


def test_readme_command_reference_names_only_real_commands(reference):
    section = _section(README.read_text(encoding="utf-8"), "Command reference")
    tree = {path: command for path, command, _ in reference.iter_commands()}
    named = _named_commands(section)
    assert named, "README's command reference names no command"
    for span in named:
        assert _resolve(span.split(), tree, reference) is not None, f"README names `{span}`, which is not a command"


# ------------------------------------------------------------------------------------------------
# (c) README stays a short user's guide
# ------------------------------------------------------------------------------------------------

def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < MAX_README_LINES, f"README has {len(lines)} lines; move detail into docs/"


def test_readme_has_the_training_options_markers_once_and_in_order():
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- train-options:begin -->", "<!-- train-options:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    assert text.index(begin) < text.index(end)
    assert _section(text, "Training").count(begin) == 1


# ------------------------------------------------------------------------------------------------
# (d) relative links lead to files (and headings) that exist
# ------------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)     # a link's text only
    heading = heading.strip().lower()
    kept = "".join(ch for ch in heading if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _strip_code_blocks(path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = _slug(match.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _relative_links(path: Path) -> list[str]:
    text = _strip_code_blocks(path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)                          # inline code is not a link
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.I)]


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(doc):
    broken = []
    for target in _relative_links(doc):
        file_part, _, fragment = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target} (outside the repository)")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.relative_to(ROOT)})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {', '.join(broken)}"


def test_the_docs_have_links_to_check():
    assert len(_relative_links(README)) >= 10


# Repository files named in inline code (`ccvae_tools/objective/bound.py`, `bash benchmarks/x.sh`):
# they are not links, but a file that moves must take its mentions in the docs with it.
REPO_PATH = re.compile(r"(?<![\w./-])((?:ccvae_tools|benchmarks|weights|docs|tests)/[\w./-]*\w\.(?:py|sh|md|json|safetensors))\b")


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_files_named_in_the_docs_exist(doc):
    text = doc.read_text(encoding="utf-8")
    named = {m for span in re.findall(r"`([^`\n]+)`", text) for m in REPO_PATH.findall(span)}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {', '.join(missing)}"


def test_architecture_names_every_module():
    """docs/architecture.md has a line for every module of the package, and names none that is gone."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    package = ROOT / "ccvae_tools"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    missing = sorted(m for m in modules if f"`{m}`" not in text)
    assert not missing, f"docs/architecture.md does not describe: {', '.join(missing)}"
    named = set(re.findall(r"`((?:[a-z_]+/)?[a-z_]+\.py)`", text))
    gone = sorted(n for n in named if n not in modules and not (ROOT / n).exists())
    assert not gone, f"docs/architecture.md names modules that do not exist: {', '.join(gone)}"
