"""Run, request and hold identifiers never read as personal data (CI once failed on
``audit-...-28433286``: a random hex suffix made only of digits was detected as a phone)."""
from __future__ import annotations

import re

from governance.detection.text import detect_line
from governance.ids import new_id


def test_the_failing_shape_is_detected_and_ours_is_never() -> None:
    # The old shape, an all-digit suffix, is what the detector flags: the check can fail.
    assert any(e.type == "PHONE_NUMBER"
               for e in detect_line("audit-20261130T031407Z-28433286"))
    ids = {new_id("audit", "20261130T031407Z") for _ in range(3000)}
    assert len(ids) == 3000
    for prefix, stamp, length in (("audit", "20261130T031407Z", 8), ("dsar", "20261130", 8),
                                  ("hold", "", 10), ("ret", "20261130", 8)):
        for _ in range(300):
            value = new_id(prefix, stamp, length)
            suffix = value.rsplit("-", 1)[1]
            assert len(suffix) == length and re.fullmatch(r"[a-z][a-z2-9]+", suffix)
            assert value.startswith(f"{prefix}-{stamp}-" if stamp else f"{prefix}-")
            line = f"run {value} finished"
            assert not detect_line(line), (value, [(e.type, line[e.start:e.end])
                                                   for e in detect_line(line)])
