"""`govkit detect`: entities with character offsets in text lines, and redaction."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from governance.cli import main
from governance.detection.analyzer import Entity
from governance.detection.text import redact

LINES = [
    "Contact ann@example.com or +1 415-555-0132 today",
    "客户张伟的身份证号是11010519491231002X，手机13812345678。",
    "",
    "order 20231105123456 shipped, card 4111 1111 1111 1111",
    "nothing personal here",
]


def _run(args: list[str], stdin: str | None = None) -> list[str]:
    result = CliRunner().invoke(main, ["detect", *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_detect_stdin_json_lines_with_character_offsets() -> None:
    out = [json.loads(line) for line in _run([], "\n".join(LINES) + "\n")]
    assert [o["line"] for o in out] == [1, 2, 3, 4, 5]
    for o in out:
        text = LINES[o["line"] - 1]
        for e in o["entities"]:
            assert set(e) == {"type", "start", "end", "score", "recognizer"}
            assert 0 <= e["start"] < e["end"] <= len(text)
    spans = {(o["line"], e["type"]): LINES[o["line"] - 1][e["start"]:e["end"]]
             for o in out for e in o["entities"]}
    assert spans[(1, "EMAIL_ADDRESS")] == "ann@example.com"
    assert spans[(1, "PHONE_NUMBER")] == "+1 415-555-0132"
    # Chinese: offsets count characters, not UTF-8 bytes.
    assert spans[(2, "CN_RESIDENT_ID")] == "11010519491231002X"
    assert spans[(2, "CN_MOBILE")] == "13812345678"
    assert spans[(4, "CREDIT_CARD")] == "4111 1111 1111 1111"
    assert out[2]["entities"] == [] and out[4]["entities"] == []
    assert not any(t == "CN_RESIDENT_ID" for (n, t) in spans if n == 4)


def test_detect_file_and_redact(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    assert len(_run([str(path)])) == len(LINES)
    red = _run(["--redact", str(path)])
    assert red[0] == "Contact <EMAIL_ADDRESS> or <PHONE_NUMBER> today"
    assert red[1] == "客户张伟的身份证号是<CN_RESIDENT_ID>，手机<CN_MOBILE>。"
    assert red[2] == ""
    assert red[4] == LINES[4]
    assert "4111" not in red[3]


def test_redact_merges_overlapping_entities() -> None:
    text = "call 13812345678 now"
    ents = [Entity("PHONE_NUMBER", 5, 16, 0.4, "PhoneRecognizer"),
            Entity("CN_MOBILE", 5, 16, 1.0, "CnMobileRecognizer")]
    assert redact(text, ents) == "call <CN_MOBILE> now"


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["detect", str(tmp_path / "nope.log")])
    assert result.exit_code == 2
    assert "nope.log" in result.output
