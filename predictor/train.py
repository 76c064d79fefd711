"""Train the lead-scoring booster and write the artifact folder kserve-xgbserver serves.

    python -m predictor.train --out predictor/model                      # synthetic population (default)
    python -m predictor.train --out my-model --data crm-export.parquet   # your CRM export: 50 columns + `converted`
    python -m predictor.train --out my-model --from-lake s3://lake/scores  # recorded features + joined outcomes

The folder gets exactly one booster (`model.ubj`) and `model-card.yaml`. Same data + same seed → same booster bytes.
`--out` must be new, empty or an earlier artifact's folder (anything else in it is refused, never deleted).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xgboost as xgb

from contract.features import FEATURE_NAMES, FEATURES
from contract.measures import auc, log_loss
from contract.model_card import (
    BOOSTER_SUFFIXES,
    CARD_FILE,
    MODEL_NAME_PATTERN,
    MODEL_VERSION_PATTERN,
    Histogram,
    Metrics,
    ModelCard,
    TierStats,
    sha256_file,
)
from contract.tiers import CUT_QUANTILES, TIER_SHARES, TierMap
from contract.validation import find_problems
from predictor.synthetic import sample_population
from quality import cli_args

LABEL = "converted"
BOOSTER_FILE = "model.ubj"
TIER_POLICY = (
    "Cut points at the 30/55/75/90 % quantiles of validation-split scores, so tiers E/D/C/B/A hold "
    "30/25/20/15/10 % of leads like the training population. A score equal to a cut point takes the higher tier."
)


MIN_TRAINING_ROWS = 1000  # and 50 conversions: below that the validation split cannot stop early or cut tiers


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:,}, got {value:,}")
        return value

    return parse


def _matching(pattern: str, rule: str):
    def parse(text: str) -> str:
        if not re.fullmatch(pattern, text):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return text

    return parse


class DataError(ValueError):
    """A user's training file does not fit the feature contract; the message names every bad column."""


def _artifact_files_in(out: Path, data: Path | None) -> list[Path]:
    """The files of an earlier artifact that this run replaces. --out must hold nothing else: the folder is what
    the storage-initializer downloads, and a user's file there would be served beside the model or lost."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    if data is not None and data.resolve().parent == out.resolve():
        raise DataError(f"--data {data} is inside --out {out}: write the model to a folder of its own")
    artifact, other = [], []
    for item in sorted(out.iterdir()):
        ours = item.is_file() and (item.name == CARD_FILE or item.name.endswith(BOOSTER_SUFFIXES))
        (artifact if ours else other).append(item)
    if other:
        names = ", ".join(p.name for p in other[:5]) + (" …" if len(other) > 5 else "")
        raise DataError(
            f"--out {out} holds more than a model artifact ({names}): choose an empty folder or an earlier "
            "artifact's folder"
        )
    return artifact


def load_user_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        table = pq.read_table(path)
    elif path.suffix == ".csv":
        table = pcsv.read_csv(path)
    else:
        raise DataError(f"{path}: expected a .parquet or .csv file")
    problems: list[str] = []
    missing = [name for name in (*FEATURE_NAMES, LABEL) if name not in table.column_names]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    # A column that is missing or not numeric is reported as such; in the range check below it holds a valid
    # lead's value, so the other columns' out-of-contract values are named in the same message.
    (valid_lead,), _ = sample_population(1, seed=0)
    columns = []
    for index, name in enumerate(FEATURE_NAMES):
        stand_in = np.full(table.num_rows, valid_lead[index])
        if name not in table.column_names:
            columns.append((name, stand_in))
            continue
        column = table.column(name)
        try:
            columns.append((name, pc.cast(column, "float64").to_numpy(zero_copy_only=False)))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for an uncastable column
            problems.append(f"column {name}: not numeric ({column.type}): {str(exc).splitlines()[0]}")
            columns.append((name, stand_in))
    label = None
    if LABEL in table.column_names:
        try:
            label = pc.cast(table.column(LABEL), "float64").to_numpy(zero_copy_only=False)
            bad = ~np.isin(label, [0.0, 1.0])
            if bad.any():
                problems.append(
                    f"column {LABEL}: {int(bad.sum())} value(s) are not 0/1 (first at row {int(np.argmax(bad))})"
                )
        except Exception:  # noqa: BLE001
            problems.append(f"column {LABEL}: not numeric ({table.column(LABEL).type}); expected 0/1")
    x = np.column_stack([values for _, values in columns])
    found, _ = find_problems(x)
    by_field: dict[str, list] = {}
    for row, col, rule, value in found:
        by_field.setdefault(FEATURE_NAMES[col], []).append((row, rule, value))
    for field, items in by_field.items():
        row, rule, value = items[0]
        spec = FEATURES[FEATURE_NAMES.index(field)]
        problems.append(
            f"column {field}: {len(items)} value(s) break rule '{rule}' (valid: {spec.range_text}; "
            f"first at row {row}: {value})"
        )
    if problems:
        raise DataError(
            f"{path} does not fit the 50-feature contract (see docs/features.md):\n  - "
            + "\n  - ".join(problems)
        )
    if len(label) < MIN_TRAINING_ROWS or label.sum() < 50:
        raise DataError(
            f"{path}: need at least 1,000 rows and 50 conversions to train, got {len(label)} rows, "
            f"{int(label.sum())} conversions"
        )
    return x, label.astype(np.int8)


def reference_histogram(values: np.ndarray, kind: str, n_choices: int | None) -> Histogram:
    present = values[~np.isnan(values)]
    missing_share = float(1 - present.size / max(values.size, 1))
    if kind in {"bool", "category"}:
        top = 1 if kind == "bool" else (n_choices or 1) - 1
        edges = [i + 0.5 for i in range(top)]
    else:
        edges = (
            sorted(set(float(v) for v in np.quantile(present, np.linspace(0.1, 0.9, 9))))
            if present.size
            else []
        )
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    shares = counts / max(values.size, 1)
    return Histogram(
        edges=edges, shares=[round(float(s), 6) for s in shares], missing_share=round(missing_share, 6)
    )


def train(
    x: np.ndarray,
    y: np.ndarray,
    out: Path,
    *,
    seed: int,
    name: str,
    version: str | None,
    threads: int,
    rounds: int,
    source: str,
    served_scores: np.ndarray | None = None,
    provenance: dict | None = None,
) -> ModelCard:
    """`served_scores` (aligned with y): what the serving model answered for these rows; the card then compares
    both models on the same held-out rows. `provenance` goes into the card's `training` section as is."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_valid = n_test = int(0.15 * len(y))
    test, valid, fit = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    x32 = x.astype(np.float32)
    # No feature names in the DMatrix: the stock runtime predicts on an unnamed matrix and a named booster refuses it.
    dtrain = xgb.DMatrix(x32[fit], label=y[fit], missing=np.nan)
    dvalid = xgb.DMatrix(x32[valid], label=y[valid], missing=np.nan)
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "auc"],
        "tree_method": "hist",
        "max_depth": 5,
        "eta": 0.08,
        "subsample": 0.9,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "lambda": 1.0,
        "seed": seed,
        "nthread": threads,
    }
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=25,
        verbose_eval=False,
    )
    # Keep only the best trees, so the file served predicts exactly what early stopping chose.
    best_iteration = int(booster.best_iteration)
    booster = booster[: best_iteration + 1]

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.suffix in {".bst", ".json", ".ubj"}:
            stale.unlink()
    booster_path = out / BOOSTER_FILE
    booster.save_model(booster_path)
    digest = sha256_file(booster_path)

    p_valid = booster.predict(dvalid)
    thresholds = TierMap.thresholds_from_scores(p_valid)
    tier_map = TierMap(thresholds)
    p_test = booster.predict(xgb.DMatrix(x32[test], missing=np.nan))
    y_test = y[test]
    base_rate = float(y_test.mean())
    test_tiers = tier_map.tiers(tier_map.buckets(p_test))
    tiers = {}
    for tier in "ABCDE":
        members = test_tiers == tier
        rate = float(y_test[members].mean()) if members.any() else 0.0
        tiers[tier] = TierStats(
            share=round(float(members.mean()), 4),
            conversion_rate=round(rate, 4),
            lift=round(rate / base_rate, 3) if base_rate else 0.0,
        )
    sample = x[fit[:100_000]]
    reference = {
        spec.name: reference_histogram(sample[:, i], spec.kind, len(spec.choices) if spec.choices else None)
        for i, spec in enumerate(FEATURES)
    }
    reference["score"] = reference_histogram(p_valid.astype(np.float64), "float", None)
    comparison = {}
    if served_scores is not None:
        comparison = {
            "holdout_rows": len(test),
            "holdout_auc": round(auc(y_test, p_test), 5),
            "holdout_serving_auc": round(auc(y_test, served_scores[test]), 5),
        }
    card = ModelCard(
        name=name,
        version=version or f"sha-{digest[:12]}",
        created_at=datetime.now(UTC).replace(microsecond=0),
        xgboost_version=xgb.__version__,
        booster_file=BOOSTER_FILE,
        booster_sha256=digest,
        feature_names=list(FEATURE_NAMES),
        tier_thresholds=thresholds,
        tier_policy=TIER_POLICY,
        expected_tier_shares=dict(TIER_SHARES),
        metrics=Metrics(
            auc=round(auc(y_test, p_test), 5),
            log_loss=round(log_loss(y_test, p_test), 5),
            base_rate=round(base_rate, 5),
            rows_train=len(fit),
            rows_valid=len(valid),
            rows_test=len(test),
            best_iteration=best_iteration,
            trees=int(booster.num_boosted_rounds()),
            tiers=tiers,
        ),
        training={
            "source": source,
            "seed": seed,
            "rows": len(y),
            "cut_quantiles": ",".join(map(str, CUT_QUANTILES)),
            "params": ",".join(f"{k}={v}" for k, v in params.items() if k != "eval_metric"),
            **(provenance or {}),
            **comparison,
        },
        reference=reference,
    )
    card.dump(out)
    return card


def lake_data(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    from datetime import timedelta

    from quality.attribution import Window, has_outcome_files, outcomes_table
    from quality.lake import Lake
    from quality.training_set import training_set

    until = args.until or datetime.now(UTC)
    window = Window(
        since=until - timedelta(days=args.days),
        until=until,
        label_window=timedelta(days=args.label_window_days),
    )
    lake = Lake(args.from_lake, s3_endpoint_url=args.s3_endpoint_url)
    lake.require_exists()
    outcomes = Lake(args.outcomes_uri, s3_endpoint_url=args.s3_endpoint_url) if args.outcomes_uri else None
    table = outcomes_table(lake, outcomes)
    try:
        found = has_outcome_files(table)
    except Exception as exc:  # noqa: BLE001 - a missing bucket or container, denied credentials: name the table
        raise DataError(f"reading the outcomes {table.uri} failed: {type(exc).__name__}: {exc}") from None
    if not found:
        # Without this, a transformer recording outcomes elsewhere read as "got 0 leads": right, but no hint why.
        raise DataError(
            f"no outcomes in {table.uri}: it holds no outcome file (dt=YYYY-MM-DD/*.parquet), so there is nothing "
            "to label; give the transformer's --outcomes_uri with --outcomes-uri (default <lake>/_outcomes)"
        )
    data = training_set(lake, window, outcomes=outcomes)
    if len(data.y) < 1000 or data.y.sum() < 50:
        raise DataError(
            f"{args.from_lake}: need at least 1,000 labelled leads and 50 conversions to train, got "
            f"{len(data.y)} leads, {int(data.y.sum())} conversions"
        )
    provenance = {
        "data_window_since": window.since.isoformat(),
        "data_window_until": window.until.isoformat(),
        "label_window_days": args.label_window_days,
        "labelled_leads": len(data.y),
        "holdout_serving_versions": ",".join(data.served_versions),
    }
    return data.x, data.y, data.served_scores, provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m predictor.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("predictor/model"), help="artifact folder to write")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="CRM export (.parquet or .csv): 50 feature columns + converted",
    )
    parser.add_argument(
        "--from-lake",
        default=None,
        metavar="URI",
        help="train on the data lake (the transformer's --sink_uri): recorded features of the latest "
        "scoring before each outcome (docs/model-quality.md)",
    )
    parser.add_argument(
        "--label-window-days",
        type=cli_args.days,
        default=90,
        help=f"with --from-lake: attribution window (default 90; > 0, at most {cli_args.MAX_DAYS:,})",
    )
    parser.add_argument(
        "--days",
        type=cli_args.days,
        default=365,
        help=f"with --from-lake: outcomes of the last N days (default 365; > 0, at most {cli_args.MAX_DAYS:,})",
    )
    parser.add_argument(
        "--until",
        type=cli_args.instant,
        default=None,
        help="with --from-lake: outcomes before this ISO time (default now; 1970 … 2200; no zone = UTC)",
    )
    parser.add_argument(
        "--outcomes-uri",
        default=None,
        metavar="URI",
        help="with --from-lake: the outcomes table (the transformer's --outcomes_uri), if not <lake>/_outcomes",
    )
    parser.add_argument("--s3-endpoint-url", default=None, help="with --from-lake: S3-compatible endpoint")
    parser.add_argument(
        "--rows",
        type=_at_least(MIN_TRAINING_ROWS),
        default=300_000,
        help=f"synthetic population size (without --data; at least {MIN_TRAINING_ROWS:,})",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--name",
        type=_matching(MODEL_NAME_PATTERN, "a DNS-1035 label (lower-case letters, digits, '-'; at most 63)"),
        default="lead-scoring",
        help="model name (must equal the InferenceService name)",
    )
    parser.add_argument(
        "--version",
        type=_matching(
            MODEL_VERSION_PATTERN, "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ),
        default=None,
        help="model version (default: sha-<booster hash>)",
    )
    parser.add_argument("--threads", type=_at_least(1), default=2, help="xgboost threads (default 2)")
    parser.add_argument(
        "--rounds",
        type=_at_least(1),
        default=600,
        help="most boosting rounds (early stopping picks fewer; at least 1)",
    )
    args = parser.parse_args(argv)
    try:
        replaced = _artifact_files_in(args.out, args.data)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    served, provenance = None, {}
    try:
        if args.from_lake:
            x, y, served, provenance = lake_data(args)
            source = f"lake:{args.from_lake}"
        elif args.data:
            x, y = load_user_data(args.data)
            source = f"file:{args.data.name}"
        else:
            x, y = sample_population(args.rows, args.seed)
            source = f"synthetic:rows={args.rows}"
    except (DataError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Staged beside --out: the same filesystem, so each file is renamed into place whole.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as staging:
        staged = Path(staging) / "artifact"
        try:
            card = train(
                x,
                y,
                staged,
                seed=args.seed,
                name=args.name,
                version=args.version,
                threads=args.threads,
                rounds=args.rounds,
                source=source,
                served_scores=served,
                provenance=provenance,
            )
        except ValueError as exc:  # e.g. tied tier cut-offs: too few rounds or too little signal
            print(f"error: cannot build a model card: {exc}", file=sys.stderr)
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        # An old booster under another suffix would make two (kserve-xgbserver refuses the folder). The booster
        # goes in before the card, and the card names the booster's hash: a crash between the two leaves a folder
        # every loader refuses, never a card beside a booster it does not describe.
        for old in replaced:
            if old.name != BOOSTER_FILE and old.name != CARD_FILE:
                old.unlink()
        (staged / BOOSTER_FILE).replace(args.out / BOOSTER_FILE)
        (staged / CARD_FILE).replace(args.out / CARD_FILE)
    m = card.metrics
    if served is not None:
        print(
            f"same hold-out ({card.training['holdout_rows']} leads): this model AUC {card.training['holdout_auc']:.3f}, "
            f"serving version(s) {card.training['holdout_serving_versions']} AUC {card.training['holdout_serving_auc']:.3f}"
        )
    print(
        f"wrote {args.out}/{BOOSTER_FILE} + model-card.yaml: version {card.version}, AUC {m.auc:.3f}, "
        f"base rate {m.base_rate:.3f}, tier A converts {m.tiers['A'].conversion_rate:.3f} "
        f"({m.tiers['A'].lift:.1f}x), {m.trees} trees"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
