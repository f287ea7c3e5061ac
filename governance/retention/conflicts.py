"""Which retention rules apply to each table, and how their conflicts are resolved.

The conflict rule (README: Retention), applied per table and recorded with the reasons:

1. **Holds beat everything.** A hold on the table or its source: nothing of the table is
   touched. A hold on persons or on a time range: their rows are left out of every rule.
2. **A legal obligation to keep beats disposal.** A rule whose ``legal_basis`` is
   ``legal_obligation`` (tax, accounting, litigation) keeps rows for its period: no rule
   deletes or anonymizes a row before every such obligation on its table has run out for
   that row (each measured on its own clock). The longest keeping obligation therefore
   decides; it is named as the deciding rule.
3. **Otherwise every rule applies**, each to the rows past its own period: deletions
   first, then anonymizations, then reviews (a row deleted is not anonymized too).

A rule applies to a table it names (``tables``), or to a table holding a column of one of
its categories (declared in the inventory or classified by the latest scan), when the
source's jurisdictions meet the policy's, and when its clock exists in the table (a
column, or an event the policy declares for the table). Rules that do not apply are kept
in the explanation with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from governance.legal_holds import Hold
from governance.retention.policy import Estate, Policy, RetentionRule

ACTION_ORDER = {"delete": 0, "anonymize": 1, "review": 2}


@dataclass(frozen=True)
class RuleOnTable:
    """One rule considered for one table."""

    policy: Policy
    rule: RetentionRule
    source: str
    table: str
    clock: str | None
    columns: dict[str, str]          # anonymize: column -> null | redact
    applies: bool
    why: str

    @property
    def name(self) -> str:
        """The rule's name."""
        return self.rule.name


@dataclass
class TableDecision:
    """How the rules of one table were resolved, and why."""

    source: str
    table: str
    considered: list[RuleOnTable] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)          # holds that touch the table

    @property
    def applying(self) -> list[RuleOnTable]:
        """Rules that apply, deletions first."""
        return sorted((r for r in self.considered if r.applies),
                      key=lambda r: (ACTION_ORDER[r.rule.action], r.rule.period.approx_days,
                                     r.name))

    @property
    def obligations(self) -> list[RuleOnTable]:
        """Applying rules that are legal obligations to keep, longest first."""
        return sorted((r for r in self.considered if r.applies and r.rule.keeps),
                      key=lambda r: (-r.rule.period.approx_days, r.name))

    @property
    def whole_hold(self) -> Hold | None:
        """A hold covering every row of the table, if any."""
        return next((h for h in self.holds if h.whole), None)

    @property
    def deciding(self) -> str | None:
        """The hold or rule that decides what happens to the table."""
        if self.whole_hold is not None:
            return f"hold {self.whole_hold.hold_id}"
        if self.obligations:
            return self.obligations[0].name
        rules = self.applying
        return rules[0].name if rules else None

    def explain(self) -> list[str]:
        """Why the table is treated as it is, one line per rule and hold."""
        out = []
        name = f"{self.source}.{self.table}"
        whole = self.whole_hold
        if whole is not None:
            out.append(f"{name}: HELD by {whole.describe()}: holds beat every rule; nothing "
                       "of this table is touched")
        for h in self.holds:
            if h is not whole:
                out.append(f"{name}: rows held by {h.describe()} are left out of every rule")
        obligations = self.obligations
        if obligations:
            top = obligations[0]
            out.append(f"{name}: decided by {top.name} ({top.policy.profile.profile}): a legal "
                       f"obligation to keep for {top.rule.period} after {top.clock}; no row "
                       "is deleted or anonymized before every keeping obligation has run out "
                       f"for it ({top.rule.basis})")
        for r in self.considered:
            if not r.applies:
                out.append(f"  - {r.name} ({r.policy.profile.profile}): does not apply: {r.why}")
                continue
            shorter = [o.name for o in obligations if o is not r and
                       o.rule.period.approx_days > r.rule.period.approx_days]
            extra = (f"; waits for the longer keeping obligation(s) {', '.join(shorter)}"
                     if shorter else "")
            what = r.rule.action + (f" {', '.join(r.columns)}" if r.columns else "")
            keep = " [legal obligation to keep]" if r.rule.keeps else ""
            out.append(f"  - {r.name} ({r.policy.profile.profile}): {what} {r.rule.period} "
                       f"after {r.clock}{keep}: {r.why}{extra}")
        if not self.considered:
            out.append(f"{name}: no retention rule covers this table")
        return out

    def as_json(self) -> dict[str, object]:
        """The decision as recorded in the store (no values)."""
        return {"deciding": self.deciding, "explanation": self.explain(),
                "rules": [{"rule": r.name, "profile": r.policy.profile.profile,
                           "applies": r.applies, "why": r.why, "clock": r.clock,
                           "action": r.rule.action, "period": str(r.rule.period),
                           "keeps": r.rule.keeps} for r in self.considered],
                "holds": [h.hold_id for h in self.holds]}


def decide(policies: Sequence[Policy], estate: Estate, holds: Iterable[Hold] = (),
           tables: Iterable[tuple[str, str]] | None = None) -> dict[tuple[str, str],
                                                                    TableDecision]:
    """The decision for every table some rule names or reaches by category (or only for
    ``tables``)."""
    holds = list(holds)
    decisions: dict[tuple[str, str], TableDecision] = {}
    only = set(tables) if tables is not None else None
    for policy in policies:
        juris = set(policy.profile.jurisdictions)
        for rule in policy.profile.rules:
            targets: dict[tuple[str, str], str] = {}
            for sel in rule.tables:
                s, _, t = sel.partition(".")
                targets[(s, t)] = "named in the rule"
            if not rule.tables:
                for key in estate.tables_with(rule.categories):
                    targets[key] = ("holds " + ", ".join(sorted(
                        {estate.categories[(key[0], key[1], c)]
                         for c in estate.category_columns(key[0], key[1], rule.categories)})))
            for (s, t), why in targets.items():
                if only is not None and (s, t) not in only:
                    continue
                decisions.setdefault((s, t), TableDecision(s, t)).considered.append(
                    _consider(policy, rule, estate, s, t, why, juris))
    for (s, t), d in decisions.items():
        d.holds = [h for h in holds if h.covers_table(s, t) or
                   (h.scope in ("subject", "subject_keys"))]
    return decisions


def _consider(policy: Policy, rule: RetentionRule, estate: Estate, source: str, table: str,
              why: str, juris: set[str]) -> RuleOnTable:
    cols = estate.columns.get((source, table), {})
    clock = policy.clock_column(rule, source, table)
    anonymized: dict[str, str] = dict(rule.columns)
    if rule.action == "anonymize" and not anonymized:
        anonymized = {c: ("null" if cols.get(c) is None or cols[c].nullable else "redact")
                      for c in estate.category_columns(source, table, rule.categories)}

    def no(reason: str) -> RuleOnTable:
        return RuleOnTable(policy, rule, source, table, clock, anonymized, False, reason)

    try:
        src = estate.inventory.source(source)
    except Exception:
        return no(f"source {source!r} is not in the inventory")
    if not juris & set(src.jurisdictions):
        return no(f"the policy is for {', '.join(sorted(juris))}; the source is in "
                  f"{', '.join(src.jurisdictions)}")
    if source in estate.unreachable:
        return no(f"source unreachable: {estate.unreachable[source]}")
    if clock is None:
        return no(f"event {rule.starts_at!r} is not declared for this table (policy events)")
    if clock not in cols:
        return no(f"no clock column {clock!r} in the table")
    if not cols[clock].is_date and not cols[clock].is_text:
        return no(f"clock column {clock!r} is not a date ({cols[clock].type})")
    if rule.action == "anonymize" and not anonymized:
        return no("no column of the rule's categories to anonymize")
    missing = [c for c in anonymized if c not in cols]
    if missing:
        return no(f"no column {missing[0]!r} to anonymize")
    return RuleOnTable(policy, rule, source, table, clock, anonymized, True, why)
