"""The 50-feature contract with clients: one pydantic model, and everything else derived from it.

The order of the fields is the model's feature order (the column order of the booster's input). Bounds, kinds,
enumerations and the missing-value policy live in the field definitions only; `FEATURES`, the vectorised checks
(`contract/validation.py`) and docs/features.md are computed from them so they cannot drift apart.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["float", "int", "bool", "category"]
Group = Literal["firmographic", "technographic", "engagement", "intent", "contact", "sales"]

INDUSTRIES = (
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "government",
    "telecom",
    "energy",
    "media",
    "logistics",
    "professional_services",
    "real_estate",
    "hospitality",
    "other",
)
REGIONS = (
    "north_america",
    "latin_america",
    "uk_ireland",
    "dach",
    "nordics",
    "southern_europe",
    "apac",
    "middle_east_africa",
)
FUNDING_STAGES = ("bootstrapped", "seed", "series_a", "series_b", "series_c_plus", "public", "private_equity")
CLOUD_PROVIDERS = ("unknown", "aws", "azure", "gcp", "multi_cloud")
CRM_SYSTEMS = ("none", "salesforce", "hubspot", "dynamics", "zoho", "other")
SENIORITIES = ("individual", "senior_ic", "manager", "director", "vp", "c_level", "owner")
DEPARTMENTS = ("sales", "marketing", "it", "engineering", "finance", "operations", "hr", "executive", "other")
SOURCE_CHANNELS = (
    "organic",
    "paid_search",
    "paid_social",
    "referral",
    "event",
    "outbound",
    "partner",
    "direct",
)
LEAD_STATUSES = ("new", "working", "nurturing", "qualified", "recycled")


def _feature(
    kind: Kind,
    group: Group,
    unit: str,
    description: str,
    *,
    required: bool,
    ge: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    if kind == "bool":
        ge, le = 0, 1
    if choices is not None:
        ge, le = 0, len(choices) - 1
    extra = {"kind": kind, "group": group, "unit": unit, "required": required}
    if choices is not None:
        extra["choices"] = list(choices)
    default = ... if required else None
    return Field(default, ge=ge, le=le, description=description, json_schema_extra=extra)


def _req(kind: Kind, group: Group, unit: str, description: str, **bounds: Any) -> Any:
    return _feature(kind, group, unit, description, required=True, **bounds)


def _opt(kind: Kind, group: Group, unit: str, description: str, **bounds: Any) -> Any:
    return _feature(kind, group, unit, description, required=False, **bounds)


class LeadFeatures(BaseModel):
    """One lead as a client sends it. Optional features may be absent or null: the booster treats them as missing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # firmographic
    employee_count: int = _req(
        "int", "firmographic", "people", "Employees at the account", ge=1, le=3_000_000
    )
    annual_revenue_musd: float | None = _opt(
        "float", "firmographic", "million USD", "Annual revenue", ge=0, le=1_000_000
    )
    company_age_years: float | None = _opt(
        "float", "firmographic", "years", "Years since founding", ge=0, le=400
    )
    industry: int = _req("category", "firmographic", "code", "Industry", choices=INDUSTRIES)
    region: int = _req(
        "category", "firmographic", "code", "Sales region of the account's HQ", choices=REGIONS
    )
    is_public_company: bool | None = _opt("bool", "firmographic", "flag", "Listed on a stock exchange")
    funding_stage: int | None = _opt(
        "category", "firmographic", "code", "Latest funding stage", choices=FUNDING_STAGES
    )
    revenue_growth_pct: float | None = _opt(
        "float", "firmographic", "percent", "Year-over-year revenue growth", ge=-100, le=1000
    )
    office_count: int | None = _opt("int", "firmographic", "offices", "Office locations", ge=1, le=10_000)
    market_tier: int = _req(
        "int", "firmographic", "tier", "1 core market … 3 opportunistic market", ge=1, le=3
    )
    # technographic
    tech_stack_size: int | None = _opt(
        "int", "technographic", "products", "Detected SaaS products in use", ge=0, le=1000
    )
    uses_competitor: bool | None = _opt("bool", "technographic", "flag", "A competitor's product is detected")
    cloud_provider: int | None = _opt(
        "category", "technographic", "code", "Main cloud provider", choices=CLOUD_PROVIDERS
    )
    crm_system: int | None = _opt("category", "technographic", "code", "CRM in use", choices=CRM_SYSTEMS)
    has_marketing_automation: bool | None = _opt(
        "bool", "technographic", "flag", "Marketing automation detected"
    )
    it_spend_pct_revenue: float | None = _opt(
        "float", "technographic", "percent", "IT spend as share of revenue", ge=0, le=100
    )
    integrations_needed: int | None = _opt(
        "int", "technographic", "integrations", "Integrations named in discovery", ge=0, le=200
    )
    tech_fit_score: float | None = _opt(
        "float", "technographic", "points", "Vendor-computed technology fit", ge=0, le=100
    )
    # engagement
    web_visits_30d: int = _req(
        "int", "engagement", "visits", "Website visits, last 30 days", ge=0, le=100_000
    )
    pages_per_visit: float | None = _opt("float", "engagement", "pages", "Mean pages per visit", ge=0, le=500)
    avg_session_minutes: float | None = _opt(
        "float", "engagement", "minutes", "Mean session length", ge=0, le=1440
    )
    pricing_page_views_30d: int = _req(
        "int", "engagement", "views", "Pricing page views, last 30 days", ge=0, le=10_000
    )
    docs_page_views_30d: int | None = _opt(
        "int", "engagement", "views", "Documentation views, last 30 days", ge=0, le=50_000
    )
    email_opens_30d: int = _req(
        "int", "engagement", "opens", "Marketing email opens, last 30 days", ge=0, le=10_000
    )
    email_clicks_30d: int = _req(
        "int", "engagement", "clicks", "Marketing email clicks, last 30 days", ge=0, le=10_000
    )
    content_downloads_90d: int | None = _opt(
        "int", "engagement", "downloads", "Gated content downloads, 90 days", ge=0, le=1000
    )
    webinar_attended: bool = _req("bool", "engagement", "flag", "Attended a webinar")
    demo_requested: bool = _req("bool", "engagement", "flag", "Requested a demo")
    free_trial_started: bool = _req("bool", "engagement", "flag", "Started a free trial")
    chat_conversations_30d: int | None = _opt(
        "int", "engagement", "conversations", "Chat conversations, 30 days", ge=0, le=1000
    )
    # intent
    intent_score: float | None = _opt(
        "float", "intent", "points", "Third-party buyer intent score", ge=0, le=100
    )
    intent_topics_count: int | None = _opt("int", "intent", "topics", "Surging intent topics", ge=0, le=500)
    competitor_research: bool | None = _opt("bool", "intent", "flag", "Researching competitors")
    review_site_visits_30d: int | None = _opt(
        "int", "intent", "visits", "Review-site visits, 30 days", ge=0, le=5000
    )
    search_ad_clicks_30d: int | None = _opt(
        "int", "intent", "clicks", "Paid search clicks, 30 days", ge=0, le=5000
    )
    intent_surge: bool | None = _opt("bool", "intent", "flag", "Intent provider reports a surge this week")
    # contact
    seniority: int = _req("category", "contact", "code", "Contact's seniority", choices=SENIORITIES)
    department: int = _req("category", "contact", "code", "Contact's department", choices=DEPARTMENTS)
    is_decision_maker: bool | None = _opt("bool", "contact", "flag", "Contact holds budget authority")
    contact_tenure_months: int | None = _opt(
        "int", "contact", "months", "Contact's time in role", ge=0, le=720
    )
    linkedin_connections: int | None = _opt(
        "int", "contact", "connections", "Contact's LinkedIn connections", ge=0, le=30_000
    )
    email_domain_is_corporate: bool = _req("bool", "contact", "flag", "Email is on the company's own domain")
    contacts_at_account: int | None = _opt(
        "int", "contact", "contacts", "Known contacts at the account", ge=1, le=100_000
    )
    # sales process
    days_since_last_touch: int | None = _opt(
        "int", "sales", "days", "Days since the last sales touch", ge=0, le=3650
    )
    touches_30d: int = _req("int", "sales", "touches", "Sales touches, last 30 days", ge=0, le=1000)
    source_channel: int = _req(
        "category", "sales", "code", "Channel that created the lead", choices=SOURCE_CHANNELS
    )
    days_in_pipeline: int | None = _opt(
        "int", "sales", "days", "Days since the lead was created", ge=0, le=3650
    )
    meetings_held: int | None = _opt(
        "int", "sales", "meetings", "Meetings held with the account", ge=0, le=500
    )
    lead_status: int = _req("category", "sales", "code", "Lifecycle status in the CRM", choices=LEAD_STATUSES)
    prior_customer: bool = _req("bool", "sales", "flag", "The account bought from us before")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Kind
    group: Group
    unit: str
    description: str
    required: bool
    minimum: float
    maximum: float
    choices: tuple[str, ...] | None

    @property
    def range_text(self) -> str:
        if self.choices is not None:
            return ", ".join(f"{i}={c}" for i, c in enumerate(self.choices))
        if self.kind == "bool":
            return "0/1 (false/true)"
        lo = int(self.minimum) if float(self.minimum).is_integer() else self.minimum
        hi = int(self.maximum) if float(self.maximum).is_integer() else self.maximum
        return f"{lo:,} … {hi:,}"


def _bound(field: Any, name: str) -> float:
    for item in field.metadata:
        if hasattr(item, name):
            return float(getattr(item, name))
    raise ValueError(f"feature field lacks {name}")  # every field is declared with both bounds


def _specs() -> tuple[FeatureSpec, ...]:
    specs = []
    for name, field in LeadFeatures.model_fields.items():
        extra = field.json_schema_extra or {}
        choices = tuple(extra["choices"]) if "choices" in extra else None
        specs.append(
            FeatureSpec(
                name=name,
                kind=extra["kind"],
                group=extra["group"],
                unit=extra["unit"],
                description=field.description or name,
                required=bool(extra["required"]),
                minimum=_bound(field, "ge"),
                maximum=_bound(field, "le"),
                choices=choices,
            )
        )
    return tuple(specs)


FEATURES: tuple[FeatureSpec, ...] = _specs()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
N_FEATURES = len(FEATURES)
assert N_FEATURES == 50, N_FEATURES  # the booster's input width is part of the wire contract


def markdown_table() -> str:
    lines = [
        "# The 50 lead features",
        "",
        "Generated from `contract/features.py` by `make docs` — do not edit by hand. Column order is the model's",
        "feature order (the `[N,50]` tensor form). Optional features may be absent or `null` (missing for the model).",
        "",
        "| # | name | group | type | unit | valid values | required | meaning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(FEATURES):
        lines.append(
            f"| {i} | `{f.name}` | {f.group} | {f.kind} | {f.unit} | {f.range_text} | "
            f"{'yes' if f.required else 'no'} | {f.description} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if "--markdown" in sys.argv:
        sys.stdout.write(markdown_table())
    else:
        for f in FEATURES:
            print(f.name, f.kind, f.range_text, "required" if f.required else "optional")
