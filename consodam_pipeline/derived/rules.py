"""The package, milestone and launch-window rules in force (domain/rules.toml, or CONSODAM_RULES)."""

import dagster as dg

from consodam_pipeline.domain.packages import Rules, RulesError, load_rules


def rules_in_force() -> Rules:
    """The rules in force; a bad file fails with one line naming the file, the field and the reason."""
    try:
        return load_rules()
    except RulesError as exc:
        raise dg.Failure(description=str(exc)) from None
