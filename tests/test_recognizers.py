from __future__ import annotations

import pytest

from governance.detection.analyzer import analyze_text, supported_entities
from governance.detection.recognizers import load_specs

SPECS = load_specs()
# Our own recognizers; the others are Presidio's own on the per-text path.
OURS = [s for s in SPECS if s.presidio_builtin is None]


@pytest.mark.parametrize("spec", OURS, ids=lambda s: s.name)
def test_spec_examples_through_presidio(spec) -> None:
    assert spec.examples_valid and spec.examples_invalid
    for value in spec.examples_valid:
        found = [e for e in analyze_text(f"value: {value} end") if e.type == spec.entity_type]
        assert found, f"{spec.name} missed valid {value}"
        assert found[0].score == 1.0
        assert found[0].recognizer == spec.name
    for value in spec.examples_invalid:
        found = [e for e in analyze_text(f"value: {value} end") if e.type == spec.entity_type]
        assert not found, f"{spec.name} reported invalid {value}"


def test_our_entities_are_registered() -> None:
    entities = supported_entities()
    for spec in SPECS:
        assert spec.entity_type in entities
        assert spec.presidio_builtin is None or spec.presidio_builtin == spec.name
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS"} <= set(entities)


def test_chinese_text_offsets_are_characters() -> None:
    text = "客户张伟的身份证号是11010519491231002X，手机13812345678。"
    found = {e.type: e for e in analyze_text(text)}
    rid, mobile = found["CN_RESIDENT_ID"], found["CN_MOBILE"]
    assert text[rid.start:rid.end] == "11010519491231002X"
    assert text[mobile.start:mobile.end] == "13812345678"


def test_checksum_failures_are_never_reported() -> None:
    # Valid shape, wrong check digit.
    assert not [e for e in analyze_text("身份证 110105194912310021") if e.type == "CN_RESIDENT_ID"]
    assert not [e for e in analyze_text("银行卡 6222021234567890127") if e.type == "CN_BANK_CARD"]


def test_digits_run_into_longer_numbers_are_not_ids() -> None:
    assert not [e for e in analyze_text("order 911010519491231002X7") if e.type == "CN_RESIDENT_ID"]
    assert not [e for e in analyze_text("tx 213812345678") if e.type == "CN_MOBILE"]
