"""Every Markdown file the project's files cite is in the repository (docs/architecture.md is the
contract of record; a citation of a file that is not here sends a reader nowhere)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Files the pipeline writes (a run's report.md), not files of the repository.
OUTPUT_NAMES = {"report.md"}
CITATION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".j2", ".cfg", ".txt", ""}


def cited_files_not_here() -> dict[str, list[str]]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    missing: dict[str, list[str]] = {}
    for name in tracked:
        path = REPO / name
        if path.suffix not in TEXT_SUFFIXES or not path.is_file() or path == Path(__file__).resolve():
            continue
        for cited in CITATION.findall(path.read_text(errors="replace")):
            if cited in OUTPUT_NAMES or any((base / cited).exists() for base in (REPO, REPO / "docs", path.parent)):
                continue
            missing.setdefault(cited, []).append(name)
    return missing


def test_every_cited_markdown_file_is_in_the_repository():
    assert cited_files_not_here() == {}


def test_the_check_sees_a_citation_of_a_missing_file(tmp_path):
    assert CITATION.findall("the contract of ARCHITECTURE.md and docs/architecture.md, not x.mdx") == [
        "ARCHITECTURE.md",
        "docs/architecture.md",
    ]
