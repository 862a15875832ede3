"""report.py: the adversarial and bomb sections, and that an accepted attack fails the report."""

from __future__ import annotations

import json

from tests.reliability import report

BASE = {"mode": "short", "time": "2026-01-01T00:00:00Z", "python": "3.11", "machine": "test"}


def line(suite, test, **figures):
    return {**BASE, "suite": suite, "test": test, **figures}


def test_attacks_are_counted_per_file_and_an_accepted_one_is_a_problem():
    lines = [
        line("attack", "tests/reliability/test_bombs.py::test_a", outcome="refused", trials=1,
             rejected=1, accepted=0),
        line("attack", "tests/reliability/test_bombs.py::test_b", outcome="skipped", trials=0,
             rejected=0, accepted=0),
        line("bomb-receipt", "tests/reliability/test_bombs.py::test_c", trials=1, rejected=1,
             accepted=0, peak_rss_bytes=40 * 2**20, baseline_rss_bytes=30 * 2**20,
             trial="an 8 MiB receipt", file_bytes=8_000_000, seconds=0.3,
             message="x.receipt: is damaged: its body is refused"),
    ]
    text, problems = report.render(lines, "short")
    assert problems == []
    assert "| Adversarial: the attack tests of issue 10 | 1 | – | – | 1 | 0 | – |" in text
    assert "| `tests/reliability/test_bombs.py` | Memory bombs (issue 10): small files that" in text
    assert "| an 8 MiB receipt | receipt reader | 8,000,000 B | 40 MiB | 30 MiB | 0.3 |" in text

    lines.append(line("attack", "tests/x.py::test_got_through", outcome="accepted", trials=1,
                      rejected=0, accepted=1))
    text, problems = report.render(lines, "short")
    assert any("test_got_through" in p for p in problems)
    assert "## Problems" in text and "Not refused:" in text


def test_main_exits_non_zero_on_an_accepted_attack(tmp_path):
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps(line("attack", "tests/x.py::t", outcome="accepted", trials=1,
                                       rejected=0, accepted=1)) + "\n")
    out = tmp_path / "R.md"
    assert report.main(["--results", str(results), "--mode", "short", "--out", str(out)]) == 1
    assert "attack not refused: `tests/x.py::t`" in out.read_text()
