"""bench/attachments.py on a small file: the child measures, the report reads it."""

import pytest

from bench.attachments import measure, report_lines


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_the_attachments_section_measures_a_file_and_reports_it(tmp_path):
    r = measure(tmp_path, 3 << 20, reps=1)
    assert "error" not in r, r
    assert r["size"] == 3 << 20 and r["bundles"] == 1 and r["bundle_bytes"] > r["size"]
    assert len(r["copy"]) == len(r["seal"]) == len(r["open"]) == 1
    text = "\n".join(report_lines(r))
    assert "## Attachments" in text and "plain file copy" in text and "3 MiB" in text
