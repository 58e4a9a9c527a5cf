"""`make bench`'s verdicts: ratios against floors, bounds both ways, one table."""

from __future__ import annotations

from benchmarks.report import Target
from benchmarks.run import table


def test_targets_bound_the_ratio_to_their_floor_or_the_value_itself() -> None:
    assert Target("first index", 2.9, "s", 3.0, floor=1.0).met
    assert not Target("first index", 3.1, "s", 3.0, floor=1.0).met
    assert Target("browse", 60, "rps", 0.5, floor=100, at_least=True).met
    assert not Target("browse", 40, "rps", 0.5, floor=100, at_least=True).met
    assert not Target("peak RSS", 251, "MiB", 250).met


def test_the_table_shows_each_verdict_and_each_failed_script() -> None:
    rows = [
        ("index", Target("first index", 5.0, "s", 3.0, floor=1.0)),
        ("cli", Target("port --help", 70, "ms", 80)),
    ]
    lines = table(rows, {"deploy.py": 2}).splitlines()
    assert lines[1].split()[-1] == "MISSED"
    assert "5 " in lines[1]  # the ratio
    assert lines[2].split()[-1] == "met"
    assert lines[3].startswith("deploy.py")
    assert lines[3].endswith("FAILED")
