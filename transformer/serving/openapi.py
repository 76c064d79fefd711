"""The OpenAPI 3.1 document of this API, served at /openapi.json (and behind /docs with --enable_docs_url).

Built from the contract, not written by hand: the 50 lead features (types, bounds, enumerations, required or not)
come from the pydantic model `contract.features.LeadFeatures`, the lead-id rule from `contract.lead_ids`, the tiers
from `contract.tiers`, and the limits (--max_leads, --reasons_max) from the running configuration. It describes the
routes this server answers — scoring (V1 `instances`, V2 columns, V2 tensor), health and metadata — each status
with its `{"error": ...}` body, and the `X-API-Key` scheme on the scoring routes.
"""

from __future__ import annotations

from contract.features import FEATURES, N_FEATURES, LeadFeatures
from contract.lead_ids import MAX_LEAD_ID_LENGTH
from contract.tiers import TIER_OF_BUCKET
from transformer.codec import DATATYPES, LEAD_ID
from transformer.request_ids import MAX_LENGTH, RULE_TEXT

_NUMERIC = sorted(DATATYPES - {"BYTES"})
_REF = "#/components/schemas/"


def _ref(name: str) -> dict:
    return {"$ref": _REF + name}


def _feature_schemas() -> tuple[dict, list[str]]:
    """Each feature's JSON schema, from pydantic's, with the contract's extras as `x-` keywords."""
    generated = LeadFeatures.model_json_schema()["properties"]
    properties = {}
    for spec in FEATURES:
        raw = generated[spec.name]
        schema: dict = {
            "title": raw.get("title", spec.name),
            "description": raw.get("description", ""),
            "x-kind": spec.kind,
            "x-group": spec.group,
            "x-unit": spec.unit,
        }
        if spec.kind == "bool":
            value: dict = {"anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0, "maximum": 1}]}
        elif spec.kind == "category":
            value = {"type": "integer", "enum": list(range(len(spec.choices or ())))}
            schema["x-choices"] = list(spec.choices or ())
            schema["description"] += ": " + spec.range_text
        else:
            value = {
                "type": "integer" if spec.kind == "int" else "number",
                "minimum": _number(spec.minimum),
                "maximum": _number(spec.maximum),
            }
        if spec.required:
            schema.update(value)
        else:
            schema["anyOf"] = [value, {"type": "null"}]
        properties[spec.name] = schema
    return properties, [f.name for f in FEATURES if f.required]


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _schemas(max_leads: int, reasons_max: int) -> dict:
    features, required = _feature_schemas()
    lead_id_text = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_LEAD_ID_LENGTH,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        "description": f"1 to {MAX_LEAD_ID_LENGTH} printable characters: no control, format or private-use "
        "characters, no line or paragraph separators and no space other than ' ' (Unicode's printable, which the "
        "pattern approximates).",
    }
    number_or_null = {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
    dims = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    reasons = {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": reasons_max,
        "description": "Ask for the top-k reason codes of each lead (--reasons_max; 0 or null: none). At most "
        "--reasons_max_leads leads per request with reasons.",
    }
    parameters = {"type": "object", "properties": {"reasons": reasons}}
    # The Open Inference Protocol's `$parameter`: a scalar (null reads as absent here).
    v2_parameters = {
        **parameters,
        "additionalProperties": {"type": ["boolean", "number", "string", "null"]},
    }
    return {
        "LeadInstance": {
            "type": "object",
            "additionalProperties": False,
            "required": required,
            "description": "One lead: the 50 features by name (docs/features.md). Optional features may be absent "
            "or null (missing for the model).",
            "properties": {
                **features,
                LEAD_ID: {
                    "description": "The client's id of the lead, echoed in the answer; a whole number is written as "
                    "its decimal string. Absent: the row number.",
                    "anyOf": [lead_id_text, {"type": "integer"}, {"type": "null"}],
                },
            },
        },
        "V1Request": {
            "type": "object",
            "required": ["instances"],
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_leads,
                    "items": _ref("LeadInstance"),
                },
                "parameters": parameters,
            },
        },
        "LeadIdInput": {
            "type": "object",
            "required": ["name", "datatype", "shape", "data"],
            "description": "The lead ids: one BYTES input of shape [N], N strings.",
            "properties": {
                "name": {"const": LEAD_ID},
                "datatype": {"const": "BYTES"},
                "shape": {"type": "array", "items": dims, "minItems": 1, "maxItems": 1},
                "data": {"type": "array", "items": lead_id_text, "maxItems": max_leads},
            },
        },
        "FeatureColumnInput": {
            "type": "object",
            "required": ["name", "datatype", "shape", "data"],
            "description": "One feature for N leads: shape [N] (or [N, 1]). The data must fit the datatype: BOOL "
            "true, false, 0 or 1; INT*/UINT* whole numbers in the type's range; FP16 only as binary data.",
            "properties": {
                "name": {"enum": [f.name for f in FEATURES]},
                "datatype": {"enum": _NUMERIC},
                "shape": {"type": "array", "items": dims, "minItems": 1, "maxItems": 2},
                "data": {"type": "array", "items": number_or_null, "maxItems": max_leads},
            },
        },
        "FeatureTensorInput": {
            "type": "object",
            "required": ["name", "datatype", "shape", "data"],
            "description": f"N leads as one [N, {N_FEATURES}] tensor, features in model order (docs/features.md). "
            "Any name that is not a feature's.",
            "properties": {
                "name": {"type": "string"},
                "datatype": {"enum": ["FP32", "FP64"]},
                "shape": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "prefixItems": [dims, {"const": N_FEATURES}],
                },
                "data": {"type": "array", "items": number_or_null, "maxItems": max_leads * N_FEATURES},
            },
        },
        "V2Columns": {
            "type": "object",
            "required": ["inputs"],
            "description": "V2, one input per feature.",
            "properties": {
                "id": {"type": "string"},
                "parameters": v2_parameters,
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"anyOf": [_ref("FeatureColumnInput"), _ref("LeadIdInput")]},
                },
            },
        },
        "V2Tensor": {
            "type": "object",
            "required": ["inputs"],
            "description": f"V2, one [N, {N_FEATURES}] tensor.",
            "properties": {
                "id": {"type": "string"},
                "parameters": v2_parameters,
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 2,
                    "items": {"anyOf": [_ref("FeatureTensorInput"), _ref("LeadIdInput")]},
                },
            },
        },
        "Reason": {
            "type": "object",
            "required": ["feature", "label", "value", "contribution", "direction"],
            "properties": {
                "feature": {"enum": [f.name for f in FEATURES]},
                "label": {"type": "string"},
                "value": {"type": ["number", "boolean", "null"]},
                "contribution": {"type": "number"},
                "direction": {"enum": ["raises", "lowers", "none"]},
            },
        },
        "Prediction": {
            "type": "object",
            "required": ["lead_id", "score", "bucket", "tier"],
            "properties": {
                "lead_id": {"type": "string"},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "bucket": {"type": "integer", "minimum": 1, "maximum": len(TIER_OF_BUCKET)},
                "tier": {"enum": list(TIER_OF_BUCKET)},
                "reasons": {"type": "array", "items": _ref("Reason")},
            },
        },
        "V1Response": {
            "type": "object",
            "required": ["predictions", "model_name", "model_version"],
            "properties": {
                "predictions": {"type": "array", "items": _ref("Prediction")},
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
            },
        },
        "V2Output": {
            "type": "object",
            "required": ["name", "datatype", "shape", "data"],
            "description": "score FP32 [N] (0..1), bucket INT32 [N] (1..5), tier BYTES [N] (A..E), lead_id BYTES "
            "[N]; with reasons: reason_feature BYTES [N, k], reason_contribution FP32 [N, k], "
            "margin_bias FP32 [N].",
            "properties": {
                "name": {
                    "enum": [
                        "score",
                        "bucket",
                        "tier",
                        LEAD_ID,
                        "reason_feature",
                        "reason_contribution",
                        "margin_bias",
                    ]
                },
                "datatype": {"enum": ["FP32", "INT32", "BYTES"]},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "data": {"type": "array"},
                "parameters": {"type": ["object", "null"]},
            },
        },
        "V2Response": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": ["string", "null"]},
                "id": {"type": ["string", "null"]},
                "parameters": {"type": ["object", "null"]},
                "outputs": {"type": "array", "items": _ref("V2Output")},
            },
        },
        "Problem": {
            "type": "object",
            "required": ["field", "rule", "message"],
            "properties": {
                "row": {"type": ["integer", "null"]},
                "field": {"type": "string"},
                "rule": {"type": "string"},
                "value": {},
                "message": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "description": "Every error answer: a message a person can act on; for invalid leads the problems "
            "(row, field, rule, value) and their total count.",
            "properties": {
                "error": {"type": "string"},
                "problems": {"type": "array", "items": _ref("Problem")},
                "problem_count": {"type": "integer", "minimum": 0},
            },
        },
        "Ready": {
            "type": "object",
            "required": ["name", "ready"],
            "properties": {"name": {"type": "string"}, "ready": {"const": True}},
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array"},
                "outputs": {"type": "array"},
            },
        },
    }


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int, said: dict[int, str] | None = None) -> dict:
    """Error responses; `said` replaces the scoring routes' descriptions where another route means otherwise."""
    text = {
        400: "The request is malformed or a lead breaks the contract (problems name row, field and rule).",
        401: "No or an unknown X-API-Key.",
        404: "No such model or model version here.",
        405: "Method not allowed on this route.",
        413: "The body is larger than --max_body_bytes.",
        429: "The key's rate limit is exhausted (Retry-After says when to retry).",
        500: "A bug: the message names the request id to find in the server log.",
        503: "The predictor is unreachable, or this replica is not ready / draining.",
        504: "The predictor did not answer within --predictor_request_timeout_seconds.",
    }
    text.update(said or {})
    return {str(s): {"description": text[s], **_json(_ref("Error"))} for s in statuses}


# The client's correlation id (transformer/request_ids.py): echoed, logged, stored; any other value is a 400.
REQUEST_ID = {
    "name": "X-Request-Id",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": "^[ -~]+$"},
    "description": f"Your correlation id: {RULE_TEXT}. Echoed in the answer's x-request-id (not on a 404, 405 or "
    "413, which are answered before the request is read), written to the log line and the data lake. Without one "
    "the server makes one; one that breaks the rule is refused with 400.",
}


def _outcomes_path(max_outcomes: int) -> dict:
    """POST /v1/outcomes (transformer/serving/outcomes_route.py), from the contract's own pydantic model."""
    from contract.outcomes import Outcome

    outcome = Outcome.model_json_schema()
    outcome["properties"]["occurred_at"]["description"] += "; a string, not a number"
    outcome["properties"]["deal_value"]["description"] += "; a JSON number (converted outcomes only)"
    body = {
        "type": "object",
        "required": ["outcomes"],
        "additionalProperties": False,
        "properties": {
            "outcomes": {"type": "array", "minItems": 1, "maxItems": max_outcomes, "items": outcome},
        },
    }
    accepted = {
        "type": "object",
        "required": ["accepted", "recorded", "duplicates", "outcome_ids", "request_id"],
        "properties": {
            "accepted": {"type": "integer", "description": "outcomes of the call that passed (all of them)"},
            "recorded": {"type": "integer", "description": "new outcomes recorded"},
            "duplicates": {
                "type": "integer",
                "description": "outcomes already recorded (same lead, outcome, time)",
            },
            "outcome_ids": {"type": "array", "items": {"type": "string"}},
            "request_id": {"type": "string"},
        },
    }
    return {
        "post": {
            "operationId": "reportOutcomes",
            "summary": "Report what leads became (enabled with --outcomes_uri; else 404)",
            "description": "All or nothing: one bad outcome refuses the call, naming row, field and rule "
            "(docs/model-quality.md). A repeat of a recorded outcome counts as a duplicate.",
            "security": [{"ApiKey": []}],
            "parameters": [
                {
                    **REQUEST_ID,
                    "description": f"Your correlation id: {RULE_TEXT}. Echoed in the answer's x-request-id (not "
                    "on a 404, 405 or 413) and written to the call's log line; the outcomes table stores each "
                    "outcome's own request_id (the scoring's), not this one. One that breaks the rule is refused "
                    "with 400.",
                }
            ],
            "requestBody": {"required": True, **_json(body)},
            "responses": {
                "200": {"description": "Recorded.", **_json(accepted)},
                **_errors(
                    400,
                    401,
                    404,
                    405,
                    413,
                    429,
                    500,
                    503,
                    said={
                        400: "The body is malformed or an outcome breaks the contract (problems name row, field "
                        "and rule); nothing of the call is recorded.",
                        404: "Outcomes are not recorded on this deployment (no --outcomes_uri).",
                        503: "The outcome recorder is full (or shutting down): nothing more of the call "
                        "was recorded; retry it (repeats are deduplicated).",
                    },
                ),
            },
        }
    }


def build(
    model_name: str,
    model_version: str,
    *,
    max_leads: int,
    reasons_max: int,
    outcomes: bool = False,
    max_outcomes: int = 1000,
) -> dict:
    scoring_errors = _errors(400, 401, 404, 405, 413, 429, 500, 503, 504)
    secured = [{"ApiKey": []}]
    ready = {
        "200": {
            "description": "Ready: the predictor answers and every protocol can score.",
            **_json(_ref("Ready")),
        },
        **_errors(404, 405, 500, 503),
    }
    v2_body = {
        "required": True,
        "content": {
            "application/json": {"schema": {"anyOf": [_ref("V2Columns"), _ref("V2Tensor")]}},
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "The binary tensor extension: a JSON header of Inference-Header-Content-Length bytes, "
                    "then the inputs' bytes.",
                }
            },
        },
    }
    v2_answer = {
        "200": {
            "description": "Scores, buckets, tiers and lead ids, in request order.",
            "content": {
                "application/json": {"schema": _ref("V2Response")},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **scoring_errors,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Lead scoring ({model_name})",
            "version": model_version,
            "description": "Scores B2B leads: V1 `instances` of named features, or V2 (Open Inference "
            "Protocol) as one input per feature or one [N, 50] tensor. gRPC: the same V2 "
            '`ModelInfer` with `x-api-key` metadata. Every error answer is `{"error": ...}`.',
        },
        "components": {
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "One key per client integration (docs/security.md).",
                }
            },
            "schemas": _schemas(max_leads, reasons_max),
        },
        "paths": {
            f"/v1/models/{model_name}:predict": {
                "post": {
                    "operationId": "predictV1",
                    "summary": "Score leads (V1, named features)",
                    "security": secured,
                    "parameters": [REQUEST_ID],
                    "requestBody": {"required": True, **_json(_ref("V1Request"))},
                    "responses": {
                        "200": {
                            "description": "One prediction per lead, in request order.",
                            **_json(_ref("V1Response")),
                        },
                        **scoring_errors,
                    },
                }
            },
            f"/v2/models/{model_name}/infer": {
                "post": {
                    "operationId": "inferV2",
                    "summary": "Score leads (V2)",
                    "security": secured,
                    "parameters": [
                        REQUEST_ID,
                        {
                            "name": "Inference-Header-Content-Length",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1},
                            "description": "Binary tensor extension only: the length of the JSON header.",
                        },
                    ],
                    "requestBody": v2_body,
                    "responses": v2_answer,
                }
            },
            "/v2/health/live": {
                "get": {
                    "operationId": "live",
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": {"description": "The process serves.", **_json({"type": "object"})},
                        **_errors(405, 500),
                    },
                }
            },
            "/v2/health/ready": {
                "get": {"operationId": "ready", "summary": "Readiness", "security": [], "responses": ready}
            },
            f"/v2/models/{model_name}/ready": {
                "get": {
                    "operationId": "modelReady",
                    "summary": "Model readiness",
                    "security": [],
                    "responses": ready,
                }
            },
            **({"/v1/outcomes": _outcomes_path(max_outcomes)} if outcomes else {}),
            f"/v2/models/{model_name}": {
                "get": {
                    "operationId": "modelMetadata",
                    "summary": "Model metadata (inputs, outputs, tensor form)",
                    "security": [],
                    "responses": {
                        "200": {"description": "V2 model metadata.", **_json(_ref("ModelMetadata"))},
                        **_errors(405, 500),
                    },
                }
            },
        },
    }
