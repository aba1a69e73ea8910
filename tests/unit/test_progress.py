"""The benchmarks' progress output: in a log, a line every few seconds, not one per item."""

import pytest

from tools.loadtest import progress


def test_in_a_log_progress_is_one_line_at_the_start_and_one_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for done in range(1, 1001):
        progress("submitted", done, 1000)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"submitted  [{'.' * 30}] 1/1000",
        f"submitted  [{'#' * 30}] 1000/1000",
    ]
    assert "\r" not in "".join(lines)
