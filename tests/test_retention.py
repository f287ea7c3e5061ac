from __future__ import annotations

from pathlib import Path

import pytest

from governance.errors import ConfigError
from governance.retention import SHIPPED_PROFILES, load_retention_profile, shipped_profiles


def test_shipped_profiles_are_valid() -> None:
    profiles = shipped_profiles()
    assert set(profiles) == {"GDPR", "CCPA", "PIPL"}
    assert profiles["PIPL"].jurisdictions == ["CN"]
    kyc = next(r for r in profiles["PIPL"].rules if r.name == "identity-verification")
    assert kyc.categories == ["identity.national_id", "financial.bank_account"]
    assert kyc.action == "delete"


def test_bad_rule_names_line_and_field(tmp_path: Path) -> None:
    text = (SHIPPED_PROFILES / "gdpr.yaml").read_text().replace(
        "    retain_days: 395\n", "    retain_days: -5\n")
    path = tmp_path / "gdpr.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_retention_profile(path)
    assert "rules[1].retain_days" in str(info.value)
    assert f"{path}:" in str(info.value)


def test_a_rule_named_twice_is_reported_at_the_second(tmp_path: Path) -> None:
    """Found by a helper: the error named line 4 (``rules:``) and a field ``rules.rules[1]
    .name``; it names the second rule's name now."""
    from governance.retention.policy import load_policies

    rule = ("  - name: a\n    tables: [app.orders]\n    retain: 90 days\n    clock: created_at\n"
            "    action: delete\n    basis: \"Orders: 90 days\"\n")
    path = tmp_path / "retention.yaml"
    path.write_text("version: 1\nprofile: t\njurisdictions: [EU]\nrules:\n" + rule + rule)
    with pytest.raises(ConfigError) as info:
        load_policies([path])
    assert str(info.value) == f"{path}:11: rules[1].name: rule declared twice: a"
