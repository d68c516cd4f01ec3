"""The benchmark report is whole, and the pages cite only what it holds.

docs/benchmarks.md must have a section for every part benchmarks/run.py measures (PARTS), and
every page (any *.md) that cites the report, as "part 10 of the benchmark", "[the benchmark
report](...), part 8", "benchmark part 12" or a link to one of its headings
(`benchmarks.md#8-rolling-out-a-new-champion`), must name a part the report has. A figure a
page gives in a table beside such a citation (a time, a size, a rate) must be in that part.
"""

from __future__ import annotations

import ast
import re

import pytest

from conftest import REPO

REPORT = REPO / "docs" / "benchmarks.md"
# Places that are not pages of this repository: environments, build folders, caches.
NOT_PAGES = {".venv", "build", "node_modules", ".pytest_cache", "mlruns"}
# How a page names a part by its number.
PART_CITATIONS = [
    r"part (\d+) of\s+(?:the\s+)?\[?the benchmark",  # "part 10 of [the benchmark report]"
    r"benchmarks?(?: report)?\]?(?:\([^)]*\))?,?\s+part (\d+)",  # "[the benchmark report](...), part 8"
]
ANCHOR = r"benchmarks\.md#([\w-]+)"
# A figure: a number with its unit, as the report writes them ("96 s", "1,095 MB", "5.3 ms", "182/s").
FIGURE = (
    r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s?(ms|s|MB|MiB|GB|GiB)\b|(?<![\w.])(\d[\d,]*(?:\.\d+)?)/s\b"
)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def report_parts(text: str) -> dict[int, tuple[str, str]]:
    """The report's sections by part number: (the heading's anchor, the section's text)."""
    parts = {}
    for section in re.split(r"^(?=## )", text, flags=re.M)[1:]:
        heading = section.splitlines()[0][3:]
        if number := re.match(r"(\d+)\. ", heading):
            parts[int(number[1])] = (slug(heading), section)
    return parts


def figures(text: str) -> set[str]:
    """Every figure in `text` (a number with its unit), as a number, commas dropped:
    {'1095', '182', ...}. The report may give the unit in its table's header instead."""
    return {(number or rate).replace(",", "") for number, _, rate in re.findall(FIGURE, text)}


def numbers(text: str) -> set[str]:
    """Every number in `text`, commas dropped."""
    return {number.replace(",", "") for number in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def citations(page: str, parts: dict[int, tuple[str, str]]) -> list[tuple[int | None, str, str]]:
    """(the part cited, or None when it names none the report has; how it was cited; the page
    section it stands in), for every citation of the report in `page`."""
    by_anchor = {anchor: number for number, (anchor, _) in parts.items()}
    found = []
    for section in re.split(r"^(?=#{1,3} )", page, flags=re.M):
        flat = " ".join(section.split())  # a citation may break across lines
        for pattern in PART_CITATIONS:
            for number in re.findall(pattern, flat, flags=re.I):
                found.append(
                    (int(number) if int(number) in parts else None, f"part {number}", section)
                )
        for anchor in re.findall(ANCHOR, flat):
            found.append((by_anchor.get(anchor), f"#{anchor}", section))
    return found


def pages():
    for page in sorted(REPO.rglob("*.md")):
        relative = page.relative_to(REPO)
        if page != REPORT and not NOT_PAGES & set(relative.parts):
            yield relative


def test_the_report_has_a_section_for_every_part_the_benchmark_measures():
    run = ast.parse((REPO / "benchmarks" / "run.py").read_text())
    (measured,) = [
        ast.literal_eval(node.value)
        for node in run.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PARTS"
    ]
    parts = report_parts(REPORT.read_text())
    assert sorted(parts) == list(range(1, len(measured) + 1)), (
        f"benchmarks/run.py measures {len(measured)} parts ({', '.join(measured)}); "
        f"docs/benchmarks.md has sections {sorted(parts)}"
    )
    for number, (_, section) in parts.items():
        assert "**What it means for you:**" in section, f"part {number} says nothing of its meaning"


@pytest.mark.parametrize("page", list(pages()), ids=str)
def test_a_page_cites_only_parts_and_figures_the_report_holds(page):
    parts = report_parts(REPORT.read_text())
    for number, how, section in citations((REPO / page).read_text(), parts):
        assert number is not None, (
            f"{page} cites {how} of the benchmark: docs/benchmarks.md has no such part"
        )
        # The figures in a table beside the citation are that part's figures.
        table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
        missing = sorted(figures(table) - numbers(parts[number][1]))
        assert not missing, (
            f"{page} gives {', '.join(missing)} beside {how}; part {number} of docs/benchmarks.md does not hold them"
        )


def test_the_checks_see_a_citation_and_a_figure_the_report_lacks():
    report = "## 1. One\n\n| a |\n| 96 s | 1,095 MB |\n\n**What it means for you:** x\n"
    parts = report_parts(report)
    assert parts[1][0] == "1-one"
    page = "## Costs\n\n| 96 s | 5.3 ms, 182/s |\n\nMeasured in part 1 of\n[the benchmark report](x).\n"
    ((number, how, section),) = citations(page, parts)
    assert (number, how) == (1, "part 1")
    assert figures(section) - numbers(parts[1][1]) == {"5.3", "182"}
    assert figures("1,095 MB, 3 rows") == {"1095"}
    wrong = "[the benchmark report](../docs/benchmarks.md), part 8. [x](benchmarks.md#2-two)"
    assert [(n, how) for n, how, _ in citations(wrong, parts)] == [
        (None, "part 8"),
        (None, "#2-two"),
    ]
