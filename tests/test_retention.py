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
