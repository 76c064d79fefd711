"""A seeded synthetic B2B lead population, for training the default model and for tests and benchmarks.

How the population is drawn (all vectorised; 1,000,000 rows take a few seconds):

* Three latent traits per lead drive everything, so features correlate the way CRM data does:
  `size` (log company size), `engagement` and `intent` — standard normals with corr(engagement, intent) = 0.5 and
  corr(size, intent) = 0.2.
* Firmographics: employee_count is heavy-tailed (log-normal around 120 people, capped 3,000,000); annual revenue
  scales with employees (about 0.2 M USD per employee, log-normal noise); company age is gamma-distributed;
  industry and region follow fixed market shares; bigger companies are more often public and later-stage.
* Engagement: counts are Poisson with rates exp(a + b·engagement), so they are over-dispersed and correlated;
  email clicks are a binomial thinning of opens; demo requests, trials and webinars are Bernoulli in engagement.
* Missing values: optional enrichment fields go missing at realistic rates (5 % … 45 %, more often for small
  companies, as enrichment vendors cover them worse). Required fields are never missing.
* Ground truth: the conversion log-odds is a documented function (`conversion_logit`) with main effects,
  interactions (demo × seniority, pricing views × intent, fit × size) and logistic noise; its intercept is chosen so
  the base rate is about 9 %. Labels are Bernoulli draws of sigmoid(logit).
"""

from __future__ import annotations

import numpy as np

from contract.features import (
    CLOUD_PROVIDERS,
    CRM_SYSTEMS,
    DEPARTMENTS,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    FUNDING_STAGES,
    INDUSTRIES,
    LEAD_STATUSES,
    REGIONS,
    SENIORITIES,
    SOURCE_CHANNELS,
)

# Probability that an optional field is missing for a mid-size company; small companies miss more (see _blank).
MISSING_RATES: dict[str, float] = {
    "annual_revenue_musd": 0.25,
    "company_age_years": 0.10,
    "is_public_company": 0.05,
    "funding_stage": 0.30,
    "revenue_growth_pct": 0.45,
    "office_count": 0.20,
    "tech_stack_size": 0.15,
    "uses_competitor": 0.20,
    "cloud_provider": 0.25,
    "crm_system": 0.20,
    "has_marketing_automation": 0.20,
    "it_spend_pct_revenue": 0.40,
    "integrations_needed": 0.35,
    "tech_fit_score": 0.15,
    "pages_per_visit": 0.05,
    "avg_session_minutes": 0.05,
    "docs_page_views_30d": 0.10,
    "content_downloads_90d": 0.10,
    "chat_conversations_30d": 0.15,
    "intent_score": 0.30,
    "intent_topics_count": 0.30,
    "competitor_research": 0.30,
    "review_site_visits_30d": 0.35,
    "search_ad_clicks_30d": 0.25,
    "intent_surge": 0.30,
    "is_decision_maker": 0.25,
    "contact_tenure_months": 0.20,
    "linkedin_connections": 0.30,
    "contacts_at_account": 0.10,
    "days_since_last_touch": 0.08,
    "days_in_pipeline": 0.05,
    "meetings_held": 0.10,
}
BASE_RATE_TARGET = 0.09


def _choice(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.float64)


def _poisson(
    rng: np.random.Generator, base: float, slope: float, latent: np.ndarray, cap: float
) -> np.ndarray:
    return np.minimum(rng.poisson(np.exp(base + slope * latent)), cap).astype(np.float64)


def sample_features(n: int, seed: int = 7) -> np.ndarray:
    """Return a float64 matrix [n, 50] in model feature order, NaN for missing optional values."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.5], [0.2, 0.5, 1.0]])
    size, engagement, intent = rng.multivariate_normal(np.zeros(3), cov, size=n, method="cholesky").T
    x = np.empty((n, len(FEATURES)), dtype=np.float64)

    def put(name: str, values: np.ndarray) -> None:
        x[:, FEATURE_INDEX[name]] = values

    employees = np.clip(np.round(np.exp(4.8 + 1.6 * size)), 1, 3_000_000)
    put("employee_count", employees)
    put("annual_revenue_musd", np.clip(np.round(employees * 0.2 * rng.lognormal(0, 0.6, n), 3), 0, 1_000_000))
    put("company_age_years", np.clip(np.round(rng.gamma(2.0, 6.0, n) + 2.0 * np.maximum(size, 0), 1), 0, 400))
    put("industry", _choice(rng, n, [22, 12, 9, 11, 8, 5, 4, 4, 3, 4, 4, 6, 2, 2, 4]))
    put("region", _choice(rng, n, [42, 6, 10, 9, 5, 8, 14, 6]))
    public = rng.random(n) < 1 / (1 + np.exp(-(1.6 * size - 3.0)))
    put("is_public_company", public.astype(np.float64))
    stage = np.clip(np.round(1.5 + 1.2 * size + rng.normal(0, 1.0, n)), 0, 4)
    put("funding_stage", np.where(public, 5.0, np.where(rng.random(n) < 0.08, 6.0, stage)))
    put("revenue_growth_pct", np.clip(np.round(rng.normal(12, 25, n) - 4 * size, 1), -100, 1000))
    put("office_count", np.clip(np.round(np.exp(0.3 + 0.9 * size + rng.normal(0, 0.5, n))), 1, 10_000))
    put("market_tier", _choice(rng, n, [55, 30, 15]) + 1)

    fit = 1 / (1 + np.exp(-(0.8 * intent + 0.4 * size + rng.normal(0, 0.8, n))))
    put("tech_stack_size", np.clip(np.round(np.exp(2.2 + 0.5 * size + rng.normal(0, 0.4, n))), 0, 1000))
    put("uses_competitor", (rng.random(n) < 0.25 + 0.1 * (size > 0)).astype(np.float64))
    put("cloud_provider", _choice(rng, n, [20, 40, 22, 10, 8]))
    put("crm_system", _choice(rng, n, [10, 38, 24, 12, 6, 10]))
    put("has_marketing_automation", (rng.random(n) < 0.3 + 0.25 * fit).astype(np.float64))
    put("it_spend_pct_revenue", np.clip(np.round(rng.gamma(2.0, 2.0, n), 2), 0, 100))
    put("integrations_needed", np.clip(rng.poisson(2 + 3 * fit), 0, 200).astype(np.float64))
    put("tech_fit_score", np.clip(np.round(100 * fit, 1), 0, 100))

    visits = _poisson(rng, 1.3, 0.8, engagement, 100_000)
    put("web_visits_30d", visits)
    put(
        "pages_per_visit",
        np.clip(np.round(rng.gamma(2.0, 1.5, n) + 0.5 * np.maximum(engagement, 0), 2), 0, 500),
    )
    put(
        "avg_session_minutes",
        np.clip(np.round(rng.gamma(2.0, 1.8, n) * (1 + 0.3 * np.maximum(engagement, 0)), 2), 0, 1440),
    )
    put("pricing_page_views_30d", _poisson(rng, -1.2, 0.7, 0.6 * engagement + 0.8 * intent, 10_000))
    put("docs_page_views_30d", _poisson(rng, 0.2, 0.8, engagement, 50_000))
    opens = _poisson(rng, 1.5, 0.5, engagement, 10_000)
    put("email_opens_30d", opens)
    put(
        "email_clicks_30d",
        rng.binomial(opens.astype(np.int64), np.clip(0.08 + 0.05 * engagement, 0.01, 0.6)).astype(np.float64),
    )
    put("content_downloads_90d", _poisson(rng, -0.5, 0.7, engagement, 1000))
    put("webinar_attended", (rng.random(n) < 1 / (1 + np.exp(-(-2.2 + 0.8 * engagement)))).astype(np.float64))
    put(
        "demo_requested",
        (rng.random(n) < 1 / (1 + np.exp(-(-2.8 + 0.7 * engagement + 0.8 * intent)))).astype(np.float64),
    )
    put(
        "free_trial_started",
        (rng.random(n) < 1 / (1 + np.exp(-(-2.5 + 0.9 * engagement)))).astype(np.float64),
    )
    put("chat_conversations_30d", _poisson(rng, -1.5, 0.6, engagement + 0.5 * intent, 1000))

    put("intent_score", np.clip(np.round(50 + 18 * intent + rng.normal(0, 8, n), 1), 0, 100))
    put("intent_topics_count", _poisson(rng, 0.8, 0.6, intent, 500))
    put("competitor_research", (rng.random(n) < 1 / (1 + np.exp(-(-1.2 + 0.9 * intent)))).astype(np.float64))
    put("review_site_visits_30d", _poisson(rng, -0.8, 0.8, intent, 5000))
    put("search_ad_clicks_30d", _poisson(rng, -0.5, 0.5, intent + 0.3 * engagement, 5000))
    put("intent_surge", (rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 1.2 * intent)))).astype(np.float64))

    seniority = _choice(rng, n, [30, 18, 22, 14, 8, 5, 3])
    put("seniority", seniority)
    put("department", _choice(rng, n, [14, 18, 24, 16, 8, 8, 4, 3, 5]))
    put("is_decision_maker", (rng.random(n) < 0.05 + 0.14 * seniority).astype(np.float64))
    put("contact_tenure_months", np.clip(np.round(rng.gamma(1.6, 20.0, n)), 0, 720))
    put("linkedin_connections", np.clip(np.round(rng.lognormal(6.0, 0.9, n)), 0, 30_000))
    put("email_domain_is_corporate", (rng.random(n) < 0.82).astype(np.float64))
    put(
        "contacts_at_account", np.clip(np.round(np.exp(0.5 + 0.6 * size + rng.normal(0, 0.5, n))), 1, 100_000)
    )

    touches = _poisson(rng, 1.0, 0.4, engagement, 1000)
    put("days_since_last_touch", np.clip(np.round(rng.exponential(20, n) / (1 + touches / 4)), 0, 3650))
    put("touches_30d", touches)
    put("source_channel", _choice(rng, n, [24, 16, 10, 9, 8, 20, 6, 7]))
    put("days_in_pipeline", np.clip(np.round(rng.gamma(1.5, 40, n)), 0, 3650))
    put("meetings_held", _poisson(rng, -1.5, 0.6, engagement + 0.6 * intent, 500))
    put("lead_status", _choice(rng, n, [30, 28, 24, 10, 8]))
    put("prior_customer", (rng.random(n) < 0.06).astype(np.float64))

    _blank(rng, x, size)
    return x


def _blank(rng: np.random.Generator, x: np.ndarray, size: np.ndarray) -> None:
    # Enrichment vendors know small companies worse: missing rates rise by up to 1.6x for the smallest accounts.
    small_factor = 1.0 + 0.3 * np.clip(-size, 0, 2)
    for name, rate in MISSING_RATES.items():
        column = FEATURE_INDEX[name]
        x[rng.random(x.shape[0]) < rate * small_factor, column] = np.nan


def conversion_logit(x: np.ndarray) -> np.ndarray:
    """The ground-truth log-odds of conversion (before noise). Missing values count as 'no signal'."""
    f = {name: np.nan_to_num(x[:, i], nan=0.0) for i, name in enumerate(FEATURE_NAMES)}
    log_employees = np.log1p(f["employee_count"])
    fit = f["tech_fit_score"] / 100.0
    decision_power = np.isin(f["seniority"], [3, 4, 5, 6]).astype(np.float64)
    return (
        -4.1
        + 0.55 * np.log1p(f["pricing_page_views_30d"])
        + 0.25 * np.log1p(f["web_visits_30d"])
        + 0.30 * np.log1p(f["email_clicks_30d"])
        + 1.05 * f["demo_requested"] * (0.6 + 0.8 * decision_power)  # demo × seniority
        + 0.70 * f["free_trial_started"]
        + 0.35 * f["webinar_attended"]
        + 0.022 * (f["intent_score"] - 50) * (1 + 0.5 * (f["pricing_page_views_30d"] > 0))  # pricing × intent
        + 0.45 * f["intent_surge"]
        + 0.9 * fit * np.tanh((log_employees - 3.5) / 2)  # fit × size
        + 0.60 * f["prior_customer"]
        + 0.40 * f["is_decision_maker"]
        + 0.25 * f["email_domain_is_corporate"]
        - 0.012 * np.minimum(f["days_since_last_touch"], 120)
        + 0.30 * (f["lead_status"] == 3)
        - 0.35 * (f["lead_status"] == 4)
        + 0.25 * np.isin(f["source_channel"], [3, 4, 6])
        - 0.20 * (f["source_channel"] == 2)
        - 0.25 * (f["market_tier"] - 1)
        + 0.20 * np.minimum(f["meetings_held"], 5)
        - 0.30 * f["uses_competitor"]
        + 0.15 * (f["industry"] == 0)
    )


def sample_population(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Features [n, 50] (float64, NaN = missing) and a 0/1 `converted` label drawn from the documented function."""
    x = sample_features(n, seed)
    rng = np.random.default_rng(seed + 1)
    logit = conversion_logit(x) + rng.logistic(0, 0.6, n)  # label noise the model cannot recover
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return x, y


def as_records(x: np.ndarray, ids: list[str] | None = None) -> list[dict]:
    """Rows as the JSON objects a V1 client sends (missing → absent, kinds restored)."""
    kinds = [f.kind for f in FEATURES]
    records = []
    for r, row in enumerate(x):
        rec: dict = {"lead_id": ids[r] if ids else f"lead-{r}"}
        for name, kind, value in zip(FEATURE_NAMES, kinds, row, strict=True):
            if np.isnan(value):
                continue
            rec[name] = bool(value) if kind == "bool" else (float(value) if kind == "float" else int(value))
        records.append(rec)
    return records


__all__ = [
    "BASE_RATE_TARGET",
    "MISSING_RATES",
    "as_records",
    "conversion_logit",
    "sample_features",
    "sample_population",
    "CLOUD_PROVIDERS",
    "CRM_SYSTEMS",
    "DEPARTMENTS",
    "FUNDING_STAGES",
    "INDUSTRIES",
    "LEAD_STATUSES",
    "REGIONS",
    "SENIORITIES",
    "SOURCE_CHANNELS",
]
