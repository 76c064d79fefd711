"""The 50-feature contract: one pydantic model, everything else derived from it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.features import FEATURE_NAMES, FEATURES, LeadFeatures, markdown_table

GROUPS = {"firmographic", "technographic", "engagement", "intent", "contact", "sales"}


def test_fifty_named_features_in_every_group():
    assert len(FEATURES) == 50 == len(set(FEATURE_NAMES))
    assert {f.group for f in FEATURES} == GROUPS


@pytest.mark.parametrize("spec", FEATURES, ids=lambda s: s.name)
def test_every_feature_declares_kind_unit_range_and_policy(spec):
    assert spec.kind in {"float", "int", "bool", "category"}
    assert spec.unit and spec.description
    assert spec.minimum < spec.maximum
    if spec.kind == "category":
        assert spec.choices and spec.maximum == len(spec.choices) - 1
    if spec.kind == "bool":
        assert (spec.minimum, spec.maximum) == (0, 1)


def test_pydantic_model_enforces_the_same_rules():
    lead = {f.name: (f.minimum if f.kind != "bool" else False) for f in FEATURES if f.required}
    LeadFeatures(**lead)
    with pytest.raises(ValidationError, match="employee_count"):
        LeadFeatures(**{**lead, "employee_count": 0})
    with pytest.raises(ValidationError, match="unknown_thing"):
        LeadFeatures(**lead, unknown_thing=1)
    missing = dict(lead)
    missing.pop("web_visits_30d")
    with pytest.raises(ValidationError, match="web_visits_30d"):
        LeadFeatures(**missing)


def test_docs_feature_table_is_generated_from_the_model():
    from pathlib import Path

    committed = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
    assert committed == markdown_table(), "docs/features.md is stale: run `make docs`"


def test_docs_configuration_table_is_generated_from_the_parser():
    from pathlib import Path

    from transformer.cli import markdown_config_table

    committed = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert committed == markdown_config_table(), "docs/configuration.md is stale: run `make docs`"


def test_every_flag_has_an_env_var_and_an_explicit_flag_wins():
    from transformer.cli import build_parser

    args = build_parser(
        {"MAX_LEADS": "7", "SINK_INCLUDE_FEATURES": "false", "ENABLE_GRPC": "false"}
    ).parse_args([])
    assert (args.max_leads, args.sink_include_features, args.enable_grpc) == (7, False, False)
    assert build_parser({"MAX_LEADS": "7"}).parse_args(["--max_leads", "9"]).max_leads == 9
