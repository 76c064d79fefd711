"""Training: reproducible artifact, useful tiers, user CRM exports, and runtime compatibility."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from contract.features import FEATURE_NAMES
from contract.model_card import BOOSTER_SUFFIXES, CARD_FILE, find_booster, load_card, sha256_file
from predictor.synthetic import sample_population
from predictor.train import LABEL, DataError, load_user_data, main, train
from tests.conftest import runtime_scores


def test_artifact_holds_one_booster_and_a_card_the_runtime_ignores(artifact, card):
    boosters = [p for p in artifact.iterdir() if p.suffix in BOOSTER_SUFFIXES]
    assert [p.name for p in boosters] == ["model.ubj"]
    assert (artifact / CARD_FILE).is_file() and not CARD_FILE.endswith(BOOSTER_SUFFIXES)
    assert card.booster_sha256 == sha256_file(artifact / "model.ubj")
    assert card.feature_names == list(FEATURE_NAMES)
    assert card.xgboost_version.startswith("2.1.")
    assert len(card.tier_thresholds) == 4 and card.tier_thresholds == sorted(card.tier_thresholds)
    served = xgb.Booster(model_file=str(artifact / "model.ubj"))
    assert card.metrics.trees == served.num_boosted_rounds() == card.metrics.best_iteration + 1


def test_tier_a_converts_at_three_times_the_base_rate_on_held_out_leads(card, runtime_booster):
    # Fresh leads never seen in training, scored by the runtime-loaded booster.
    x, y = sample_population(100_000, seed=1234)
    scores = runtime_scores(runtime_booster, x)
    tiers = card.tier_map.tiers(card.tier_map.buckets(scores))
    base = y.mean()
    assert y[tiers == "A"].mean() >= 3 * base
    rates = [y[tiers == t].mean() for t in "ABCDE"]
    assert rates == sorted(rates, reverse=True), rates  # tiers are ordered by conversion
    assert card.metrics.tiers["A"].lift >= 3 and card.metrics.auc > 0.7


def test_runtime_compatible_load_gives_training_scores(artifact, runtime_booster):
    """Load as kserve-xgbserver does (bytearray, nthread=1) and predict on an UNNAMED float32 DMatrix."""
    x, _ = sample_population(2_000, seed=77)
    unnamed = xgb.DMatrix(x.astype(np.float32))
    trained = xgb.Booster(model_file=str(artifact / "model.ubj"))
    assert trained.feature_names is None  # a named booster would refuse the runtime's unnamed matrix
    np.testing.assert_array_equal(runtime_booster.predict(unnamed), trained.predict(unnamed))
    np.testing.assert_allclose(
        runtime_booster.inplace_predict(x.astype(np.float32)),
        runtime_booster.predict(unnamed),
        rtol=0,
        atol=1e-7,
    )


def test_same_data_and_seed_give_the_same_booster(tmp_path):
    x, y = sample_population(30_000, seed=21)
    first = train(
        x, y, tmp_path / "a", seed=21, name="lead-scoring", version=None, threads=2, rounds=80, source="t"
    )
    second = train(
        x, y, tmp_path / "b", seed=21, name="lead-scoring", version=None, threads=2, rounds=80, source="t"
    )
    assert first.booster_sha256 == second.booster_sha256
    assert (tmp_path / "a" / "model.ubj").read_bytes() == (tmp_path / "b" / "model.ubj").read_bytes()


def test_the_card_records_xgboosts_best_iteration_and_the_trees_served(tmp_path):
    x, y = sample_population(30_000, seed=21)
    card = train(
        x, y, tmp_path / "a", seed=21, name="lead-scoring", version=None, threads=2, rounds=400, source="t"
    )
    served = xgb.Booster(model_file=str(tmp_path / "a" / "model.ubj"))
    assert card.metrics.trees == served.num_boosted_rounds() < 400  # early stopping cut it short
    # xgboost's best_iteration is the 0-based index of the last tree kept (it held the tree count before).
    assert card.metrics.best_iteration == card.metrics.trees - 1


def _export(x: np.ndarray, y: np.ndarray) -> pa.Table:
    return pa.table({**{name: x[:, i] for i, name in enumerate(FEATURE_NAMES)}, LABEL: y.astype(np.int64)})


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_trains_from_a_user_crm_export(tmp_path, suffix):
    x, y = sample_population(20_000, seed=31)
    path = tmp_path / f"leads{suffix}"
    table = _export(x, y)
    pq.write_table(table, path) if suffix == ".parquet" else pcsv.write_csv(table, path)
    out = tmp_path / "model"
    assert main(["--data", str(path), "--out", str(out), "--rounds", "60", "--version", "crm-1"]) == 0
    card = load_card(out)
    assert card.version == "crm-1" and card.training["source"] == f"file:{path.name}"
    assert find_booster(out).name == "model.ubj"


def test_a_bad_export_names_every_missing_and_malformed_column(tmp_path):
    x, y = sample_population(5_000, seed=32)
    table = _export(x, y).drop_columns(["intent_score", "seniority"])
    table = table.set_column(table.column_names.index("region"), "region", pa.array(["emea"] * len(y)))
    bad = x[:, FEATURE_NAMES.index("employee_count")].copy()
    bad[10] = -5
    table = table.set_column(table.column_names.index("employee_count"), "employee_count", pa.array(bad))
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError) as error:
        load_user_data(path)
    message = str(error.value)
    assert "intent_score" in message and "seniority" in message and "region: not numeric" in message
    # In the same message: the present column's out-of-contract value, and nothing about the stand-ins.
    assert re.search(r"employee_count: 1 value\(s\) break rule 'minimum'.*row 10", message)
    assert message.count("\n  - ") == 3, message  # missing, not numeric, out of range
    table = _export(x, y)
    table = table.set_column(table.column_names.index("employee_count"), "employee_count", pa.array(bad))
    pq.write_table(table, path)
    with pytest.raises(DataError, match=r"employee_count: 1 value\(s\) break rule 'minimum'.*row 10"):
        load_user_data(path)


def test_cli_reports_a_bad_file_without_a_trace(tmp_path, capsys):
    path = tmp_path / "leads.csv"
    path.write_text("a,b\n1,2\n")
    assert main(["--data", str(path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing column(s): employee_count" in err and "Traceback" not in err


def test_a_card_beside_another_booster_is_refused(artifact, tmp_path):
    """The transformer loads the card with load_card: a folder mixing two models must not start."""
    for item in artifact.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    assert load_card(tmp_path).booster_sha256 == sha256_file(tmp_path / "model.ubj")
    (tmp_path / "model.ubj").write_bytes((artifact / "model.ubj").read_bytes() + b" ")
    with pytest.raises(ValueError, match="mixes two models"):
        load_card(tmp_path)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--rows", "0"], "--rows: must be at least 1,000"),
        (["--rows", "many"], "--rows: 'many' is not a whole number"),
        (["--threads", "0"], "--threads: must be at least 1"),
        (["--rounds", "0"], "--rounds: must be at least 1"),
        (["--version", "../x"], "--version: '../x' must be"),
        (["--name", "../../etc"], "--name: '../../etc' must be a DNS-1035 label"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, said):
    """--rows 0 and --rounds 0 ended in a traceback; a name or version with a path in it trained a model whose
    name becomes the lake's model=<name> folder and whose version goes into URLs."""
    with pytest.raises(SystemExit) as stopped:
        main(["--out", str(tmp_path / "m"), *args])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and said in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_a_card_with_a_path_in_its_name_or_version_is_refused(small_artifact, tmp_path):
    import shutil

    import yaml

    from contract.model_card import CARD_FILE, load_card

    for field, value in (("name", "../../etc"), ("version", "v1/../../x")):
        folder = tmp_path / field
        shutil.copytree(small_artifact, folder)
        card = yaml.safe_load((folder / CARD_FILE).read_text())
        card[field] = value
        (folder / CARD_FILE).write_text(yaml.safe_dump(card))
        with pytest.raises(ValueError, match=field):
            load_card(folder)


def test_retraining_into_a_folder_keeps_the_users_files_and_replaces_the_old_artifact(tmp_path, capsys):
    """--out used to be emptied of every file: a CRM export written there was deleted with the old model."""
    x, y = sample_population(20_000, seed=33)
    export = tmp_path / "exports" / "crm-export.parquet"
    export.parent.mkdir()
    pq.write_table(_export(x, y), export)
    assert main(["--data", str(export), "--out", str(export.parent), "--rounds", "20"]) == 2
    assert "inside --out" in capsys.readouterr().err and export.is_file()
    assert sorted(p.name for p in export.parent.iterdir()) == ["crm-export.parquet"]

    notes = tmp_path / "shared" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("ours")
    assert main(["--data", str(export), "--out", str(notes.parent), "--rounds", "20"]) == 2
    err = capsys.readouterr().err
    assert "holds more than a model artifact (notes.txt)" in err and "Traceback" not in err
    assert notes.read_text() == "ours" and [p.name for p in notes.parent.iterdir()] == ["notes.txt"]

    # An earlier artifact's folder is replaced whole: an old booster under another suffix goes, or the runtime
    # would find two boosters and refuse the folder.
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{}")
    (model / CARD_FILE).write_text("old")
    assert main(["--data", str(export), "--out", str(model), "--rounds", "20", "--version", "v2"]) == 0
    assert sorted(p.name for p in model.iterdir()) == [CARD_FILE, "model.ubj"]
    assert load_card(model).version == "v2"
    # No staging folder is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "model", "shared"]


def test_too_few_rounds_for_distinct_tier_cut_offs_is_one_line_not_a_traceback(tmp_path, capsys):
    """One tree scores the validation leads with a handful of values, so the tier cut-offs tie: exit 2, a line."""
    out = tmp_path / "m"
    assert main(["--rows", "20000", "--rounds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: cannot build a model card:") and "ascending" in err and "Traceback" not in err
    )
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_file_named_only_by_a_booster_suffix_counts_as_a_booster_as_the_runtime_counts_it(
    artifact, tmp_path
):
    """kserve-xgbserver matches file names with endswith: a stray `.json` beside model.ubj makes it refuse the
    folder, so the card loader must refuse it too (Path.suffix of `.json` is empty)."""
    (tmp_path / "model.ubj").write_bytes((artifact / "model.ubj").read_bytes())
    (tmp_path / ".json").write_text("{}")
    with pytest.raises(RuntimeError, match="more than one booster file"):
        find_booster(tmp_path)
