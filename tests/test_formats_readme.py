"""The README's number-format tour runs as written (doctest of its `## Number formats` section)."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np

README = Path(__file__).parents[1] / "README.md"


def test_readme_format_examples_run_as_written() -> None:
    text = README.read_text()
    start = text.index("## Number formats")
    end = text.find("\n## ", start + 1)
    section = text[start:] if end < 0 else text[start:end]
    parser = doctest.DocTestParser()
    test = parser.get_doctest(section, {"np": np}, "README number formats", str(README), 0)
    assert test.examples, "the section should carry runnable examples"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0
