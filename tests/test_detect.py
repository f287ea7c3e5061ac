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


def test_redact_masks_an_address_whose_host_has_no_dot(tmp_path: Path) -> None:
    """Found by a helper: `detect --redact` printed Oracle's CO customers' e-mails
    (``tammy.bryant@internalmail``) in clear; reasons and notes already masked them."""
    path = tmp_path / "mail.txt"
    path.write_text("ask tammy.bryant@internalmail or j.doe@example.com\n", encoding="utf-8")
    assert _run(["--redact", str(path)]) == ["ask <EMAIL_ADDRESS> or <EMAIL_ADDRESS>"]


def test_redact_merges_overlapping_entities() -> None:
    text = "call 13812345678 now"
    ents = [Entity("PHONE_NUMBER", 5, 16, 0.4, "PhoneRecognizer"),
            Entity("CN_MOBILE", 5, 16, 1.0, "CnMobileRecognizer")]
    assert redact(text, ents) == "call <CN_MOBILE> now"


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["detect", str(tmp_path / "nope.log")])
    assert result.exit_code == 2
    assert "nope.log" in result.output


# --- issue 14: text formats -------------------------------------------------------------------

import pytest  # noqa: E402
from stdnum import iban as std_iban  # noqa: E402
from stdnum import luhn  # noqa: E402

from governance.detection.text import detect_line  # noqa: E402


def _types(text: str, **kw) -> dict[str, str]:
    return {e.type: text[e.start:e.end] for e in detect_line(text, **kw)}


def _card(prefix: str, length: int) -> str:
    body = prefix + "0" * (length - len(prefix) - 2) + "1"
    return body + luhn.calc_check_digit(body)


@pytest.mark.parametrize("value", [
    "AD1200012030200359100100", "AT611904300234573201", "CZ6508000000192000145399",
    "AD12 0001 2030 2003 5910 0100", "AT61 1904 3002 3457 3201",
    "CZ65 0800 0000 1920 0014 5399", "DE89 3704 0044 0532 0130 00",
    "MT84MALT011000012345MTLCAST001S", "BR1800000000141455123924100C2",
])
def test_ibans_of_every_country_compact_and_printed(value: str) -> None:
    assert std_iban.is_valid(value)
    text = f"Transfer to {value} by Friday"
    found = detect_line(text)
    assert [(e.type, text[e.start:e.end]) for e in found] == [("IBAN_CODE", value)]


def test_iban_with_a_wrong_check_is_not_reported() -> None:
    assert not detect_line("Transfer to AD1210012030200359100100 by Friday")


@pytest.mark.parametrize(("prefix", "length"), [
    ("4", 19), ("4", 13), ("2131", 15), ("1800", 15), ("3530", 16), ("5018", 12),
    ("2221", 16), ("2720", 16), ("51", 16), ("34", 15), ("37", 15), ("6011", 16), ("62", 17),
])
def test_card_brands_and_lengths(prefix: str, length: int) -> None:
    number = _card(prefix, length)
    assert luhn.is_valid(number) and len(number) == length
    assert _types(f"card {number} ok") == {"CREDIT_CARD": number} or \
        _types(f"card {number} ok") == {"CN_BANK_CARD": number}
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not {"CREDIT_CARD", "CN_BANK_CARD"} & set(_types(f"card {wrong} ok"))


def test_mastercard_outside_its_2_series_is_no_card() -> None:
    assert "CREDIT_CARD" not in _types(f"ref {_card('2721', 16)} ok")


def test_no_phone_inside_a_card_an_ssn_or_a_licence() -> None:
    for text in ("card 4111 1111 1111 1111 ok", "card 4000056655665556 ok",
                 "SSN 536-22-1234 on file", "licence D1234567 A1234567 issued"):
        assert "PHONE_NUMBER" not in _types(text), text


def test_a_phone_dialled_from_the_us_in_digit_groups_is_no_ssn() -> None:
    """Found by a helper: Oracle's HR sample in its older releases writes European staff
    phones as ``011.44.1344.429268`` (the US exit code first); its first three groups have
    an SSN's shape. An SSN stands alone; one written on its own is still found."""
    for text in ("011.44.1344.429268", "call 011 44 1344 429268", "011-44-1344-429268"):
        assert "US_SSN" not in _types(text), text
    assert _types("ssn: 219-09-9999 on file") == {"US_SSN": "219-09-9999"}
    assert _types("SSN 536-22-1234.") == {"US_SSN": "536-22-1234"}


def test_house_number_and_postcode_are_no_phone() -> None:
    for text in ("Hauptstraße 12, 10115 Berlin", "12 Main St, Springfield 62704",
                 "Flat 3, 221 Baker Street, NW1 6XE London"):
        assert "PHONE_NUMBER" not in _types(text), text


def test_national_phone_after_a_label_or_with_the_records_country() -> None:
    assert _types("Phone: 020 7946 0958") == {"PHONE_NUMBER": "020 7946 0958"}
    assert _types("Tel. 030 901820") == {"PHONE_NUMBER": "030 901820"}
    assert _types("电话：010 6552 9988") == {"PHONE_NUMBER": "010 6552 9988"}
    # Without a trunk prefix or label, a national number counts only in its country.
    assert "PHONE_NUMBER" not in _types("Rufnummer 30901820")
    assert _types("Rufnummer 30901820", country="DE") == {"PHONE_NUMBER": "30901820"}


def test_resident_id_needs_a_real_province() -> None:
    # 990426199112010074: right check digit, real date, no province 99 (GB/T 2260).
    assert "CN_RESIDENT_ID" not in _types("身份证 990426199112010074")
    assert _types("身份证 360426199101010071") == {"CN_RESIDENT_ID": "360426199101010071"}


def test_uscc_written_with_spaces() -> None:
    assert _types("信用代码 91 110000 600037341L") == {"CN_USCC": "91 110000 600037341L"}
