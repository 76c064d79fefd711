"""pandas stays out of the transformer until something really uses it (issue 17: ~35 MB of RSS).

kserve imports pandas unconditionally, pyarrow looks for it on its first conversion; neither needs it on our path.
`lean_kserve.import_kserve` hands kserve a stand-in that imports the real pandas on first use, and
`transformer.sink.arrow` lets pyarrow look for pandas while it is hidden; the booster never imports xgboost's Python
package, which would import pandas (transformer/native_xgboost.py). Each check runs in a fresh interpreter: this test
process has pandas loaded already.
"""

from __future__ import annotations

# subprocess: a fresh interpreter per check (bandit B404/B603 reviewed: our own interpreter, fixed code).
import subprocess  # nosec B404
import sys
import textwrap

from hack.stack import ROOT


def run_fresh(code: str) -> str:
    done = subprocess.run(  # nosec B603
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_kserve_comes_in_without_pandas_and_still_builds_dataframes_when_asked():
    out = run_fresh(
        """
        import sys
        from transformer.serving import lean_kserve
        lean_kserve.import_kserve()
        loaded_after_import = "pandas" in sys.modules
        from kserve import InferInput, InferRequest
        from kserve.utils.utils import get_predict_response
        request = InferRequest("m", [InferInput("x", [2, 1], "FP32", data=[1.0, 2.0])])
        loaded_after_request = "pandas" in sys.modules
        frame = request.as_dataframe()  # kserve's own pandas path: the real pandas comes in now
        import pandas
        assert type(frame) is pandas.DataFrame and frame["x"].tolist() == [1.0, 2.0]
        assert get_predict_response({"instances": []}, frame, "m") == {"predictions": [{"x": 1.0}, {"x": 2.0}]}
        print(loaded_after_import, loaded_after_request)
        """
    )
    assert out == "False False"


def test_a_pandas_loaded_before_kserve_is_the_one_kserve_uses():
    out = run_fresh(
        """
        import pandas
        from transformer.serving import lean_kserve
        lean_kserve.import_kserve()
        import sys
        print(sys.modules["kserve.protocol.infer_type"].pd is pandas, sys.modules["kserve.utils.utils"].pd is pandas)
        """
    )
    assert out == "True True"


def test_the_lake_writes_and_checks_parquet_without_loading_pandas_and_to_pandas_still_works(tmp_path):
    out = run_fresh(
        f"""
        import sys
        from datetime import UTC, datetime
        from pathlib import Path
        import numpy as np
        from transformer.sink.arrow import pa, pq
        from transformer.sink.integrity import check_parquet_file
        from transformer.sink.records import ScoredBatch
        from transformer.sink.schema import SCHEMA_VERSION, METADATA_SCHEMA_VERSION, build_table, lake_schema
        batch = ScoredBatch(  # two leads: the per-request columns are repeated
            request_id="r", scored_at=datetime.now(UTC), model_name="m", model_version="1", api_key_name="k",
            protocol="rest", request_form="v2_tensor", latency_ms=1.0, lead_ids=["a", "b"],
            scores=np.array([0.1, 0.9], np.float32), buckets=np.array([1, 5]), tiers=["E", "A"],
            features=np.array([[1.0, np.nan], [2.0, 3.0]], np.float32),
        )
        table = build_table([batch], lake_schema(["x", "y"]))
        table = table.replace_schema_metadata({{METADATA_SCHEMA_VERSION: str(SCHEMA_VERSION).encode()}})
        path = Path({str(tmp_path / "part.parquet")!r})
        pq.write_table(table, path)
        rows = check_parquet_file(path)  # the spool's full decode of a leftover file
        loaded = "pandas" in sys.modules or "pyarrow.compute" in sys.modules  # compute: ~9 MB, see sink/columns.py
        frame = pq.ParquetFile(path).read().to_pandas()  # asked for explicitly: pyarrow imports pandas now
        print(loaded, rows, frame["tier"].tolist(), "pandas" in sys.modules)
        """
    )
    assert out == "False 2 ['E', 'A'] True"


def test_with_pandas_loaded_first_pyarrow_keeps_its_pandas_interop():
    out = run_fresh(
        """
        import pandas
        from transformer.sink.arrow import pa
        print(pa.array(pandas.Series([1.5, None])).to_pylist())
        """
    )
    assert out == "[1.5, None]"


def test_the_booster_scores_and_explains_without_xgboosts_package_scipy_or_pandas(small_artifact, tmp_path):
    # The in-process booster and reason codes, as the server loads them (xgboost's C library only:
    # transformer/native_xgboost.py), against xgboost imported the ordinary way (pandas, pyarrow and scipy loaded)
    # in another fresh interpreter: the same model, the same numbers.
    code = """
        import sys
        import numpy as np
        {prelude}
        rows = np.random.default_rng(7).normal(2.0, 3.0, (64, 50)).astype(np.float32)
        rows[::5, 3] = np.nan
        from pathlib import Path
        from transformer.extras.reasons import ReasonExplainer
        from transformer.native_xgboost import NativeBooster
        booster = NativeBooster.from_model_dir(Path({model!r}))
        scores = booster.predict(rows)
        features, contributions, bias = ReasonExplainer(booster).top(rows, 3)
        loaded = sorted(m for m in ("pandas", "pyarrow", "scipy", "xgboost") if m in sys.modules)
        np.save({out!r}, np.concatenate([scores, contributions.ravel(), bias, features.ravel()]))
        print(loaded)
        """
    model = str(small_artifact)
    native = run_fresh(code.format(prelude="", out=str(tmp_path / "native.npy"), model=model))
    usual = run_fresh(code.format(prelude="import xgboost", out=str(tmp_path / "usual.npy"), model=model))
    assert native == "[]"
    assert (
        usual == "['pandas', 'pyarrow', 'scipy', 'xgboost']"
    )  # what it saves: all come with `import xgboost`
    import numpy as np

    assert np.array_equal(np.load(tmp_path / "native.npy"), np.load(tmp_path / "usual.npy"), equal_nan=True)
