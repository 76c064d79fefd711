"""Property tests: whatever a client sends, decoding + validation end in a valid matrix or in an InvalidRequest.

Any other exception would reach the client as a 500 (REST) or INTERNAL (gRPC); an error body the JSON encoder
cannot write (an integer past 64 bits, say) would too — so every InvalidRequest body is encoded with orjson,
the encoder the REST answer uses.
"""

from __future__ import annotations

import math

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.features import FEATURE_NAMES, FEATURES, N_FEATURES
from contract.validation import LeadsRejected, validate_matrix
from predictor.synthetic import as_records, sample_features
from transformer.codec import LEAD_ID, Tensor, decode_v1, decode_v2
from transformer.errors import InvalidRequest

MAX_LEADS = 20
SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
VALID = sample_features(MAX_LEADS, seed=11)
REQUIRED = np.array([f.required for f in FEATURES])
LOW = np.array([f.minimum for f in FEATURES])
HIGH = np.array([f.maximum for f in FEATURES])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: includes integers past float64
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
    st.text(max_size=8),
    st.sampled_from(["1.5", "nan", "inf", "", "0x10", "１"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
feature_names = st.sampled_from([*FEATURE_NAMES, LEAD_ID]) | st.text(max_size=12)


@st.composite
def near_valid_instances(draw):
    """Real leads with a few cells replaced: reaches validation, not only the shape checks."""
    n = draw(st.integers(1, 5))
    records = as_records(VALID[:n], [f"L{i}" for i in range(n)])
    for _ in range(draw(st.integers(0, 4))):
        row = draw(st.integers(0, n - 1))
        records[row][draw(feature_names)] = draw(json_values)
    for _ in range(draw(st.integers(0, 2))):
        records[draw(st.integers(0, n - 1))].pop(draw(st.sampled_from(FEATURE_NAMES)), None)
    return {"instances": records}


v1_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"instances": st.lists(json_values, max_size=4)}),
    st.fixed_dictionaries(
        {
            "instances": st.lists(
                st.dictionaries(feature_names, json_values, max_size=8), max_size=MAX_LEADS + 3
            )
        }
    ),
    near_valid_instances(),
)

datatypes = st.sampled_from(
    ["BOOL", "INT8", "INT32", "INT64", "UINT8", "UINT64", "FP16", "FP32", "FP64", "BYTES"]
) | st.text(max_size=6)
shapes = st.lists(st.integers(-2, MAX_LEADS + 2) | st.sampled_from([N_FEATURES, 1]), max_size=3)
numpy_data = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_]).flatmap(
    lambda dtype: st.lists(
        st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70), max_size=60
    ).map(lambda values: _cast(values, dtype))
)


def _answer_body(rejected) -> dict:
    """What the REST error answer sends for a rejection, whichever layer raised it."""
    return InvalidRequest(rejected.message, rejected.problems, rejected.total).body()


def _cast(values: list, dtype) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.array([float(v) for v in values], dtype=np.float64).astype(dtype)


tensor_data = numpy_data | st.lists(json_values, max_size=6) | json_values


@st.composite
def tensors(draw):
    return Tensor(draw(feature_names), draw(datatypes), draw(shapes), draw(tensor_data))


@st.composite
def well_formed_tensor(draw):
    """One [N, 50] tensor or real columns, sometimes poisoned: the shape checks pass, the values decide."""
    n = draw(st.integers(1, 4))
    x = np.where(np.isnan(VALID[:n]), LOW, VALID[:n])
    for _ in range(draw(st.integers(0, 3))):
        x[draw(st.integers(0, n - 1)), draw(st.integers(0, N_FEATURES - 1))] = draw(
            st.floats(allow_nan=True, allow_infinity=True)
        )
    if draw(st.booleans()):
        return [Tensor("leads", draw(st.sampled_from(["FP32", "FP64"])), [n, N_FEATURES], x.ravel())]
    names = draw(st.lists(st.sampled_from(FEATURE_NAMES), min_size=1, max_size=N_FEATURES, unique=True))
    if draw(st.booleans()):
        names = list(dict.fromkeys([*names, *(f.name for f in FEATURES if f.required)]))
    return [Tensor(name, "FP64", [n], x[:, FEATURE_NAMES.index(name)]) for name in names]


v2_requests = st.one_of(
    st.lists(tensors(), max_size=4),
    well_formed_tensor(),
    st.tuples(well_formed_tensor(), tensors()).map(lambda pair: [*pair[0], pair[1]]),
)


def _decoded_or_rejected(decode, payload) -> None:
    try:
        leads = decode(payload, MAX_LEADS)
        validate_matrix(leads.matrix)
    except (InvalidRequest, LeadsRejected) as rejected:
        assert rejected.message.strip()
        assert rejected.total >= len(rejected.problems)
        orjson.dumps(_answer_body(rejected))  # what the REST error answer sends
        return
    matrix = leads.matrix
    assert matrix.dtype == np.float64 and matrix.shape == (leads.count, N_FEATURES)
    assert 1 <= leads.count <= MAX_LEADS and len(leads.lead_ids) == leads.count
    assert all(isinstance(i, str) for i in leads.lead_ids)
    present = ~np.isnan(matrix)
    assert not np.isinf(matrix).any()
    assert present[:, REQUIRED].all()
    assert ((matrix >= LOW) | ~present).all() and ((matrix <= HIGH) | ~present).all()
    assert math.isfinite(float(np.nansum(matrix.astype(np.float32))))


@SETTINGS
@given(v1_payloads)
def test_any_v1_payload_decodes_to_a_valid_matrix_or_is_rejected_with_a_message(payload):
    _decoded_or_rejected(decode_v1, payload)


@SETTINGS
@given(v2_requests)
def test_any_v2_tensors_decode_to_a_valid_matrix_or_are_rejected_with_a_message(inputs):
    _decoded_or_rejected(decode_v2, inputs)


def test_an_integer_past_float64_is_a_range_problem_not_a_crash():
    record = as_records(VALID[:1], ["L0"])[0] | {"employee_count": 10**400}
    try:
        decode_v1({"instances": [record]}, MAX_LEADS)
    except (InvalidRequest, LeadsRejected) as rejected:
        assert rejected.problems[0]["field"] == "employee_count"
        orjson.dumps(_answer_body(rejected))
    else:
        raise AssertionError("10**400 employees was accepted")


def test_a_huge_float_above_the_maximum_is_reported_in_encodable_json():
    x = np.where(np.isnan(VALID[:1]), LOW, VALID[:1])
    x[0, FEATURE_NAMES.index("employee_count")] = 1e300
    try:
        validate_matrix(x)
    except (InvalidRequest, LeadsRejected) as rejected:
        assert orjson.loads(orjson.dumps(_answer_body(rejected)))["problems"][0]["value"] == 1e300
    else:
        raise AssertionError("1e300 employees passed validation")


def test_numeric_strings_are_not_silently_converted():
    record = as_records(VALID[:1], ["L0"])[0] | {"employee_count": "120"}
    try:
        decode_v1({"instances": [record]}, MAX_LEADS)
    except (InvalidRequest, LeadsRejected) as rejected:
        assert rejected.problems[0]["rule"] == "type"
    else:
        raise AssertionError('"120" was accepted as a number')
