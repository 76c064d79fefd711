"""The model card: the YAML file beside the booster that says what the model is and how to read its scores.

It is deliberately not named *.json/*.bst/*.ubj: kserve-xgbserver loads every file with those endings from the model
folder and refuses a folder with two. The transformer loads the card from the same storage URI as the predictor.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.features import FEATURE_NAMES
from contract.tiers import TierMap

CARD_FILE = "model-card.yaml"
BOOSTER_SUFFIXES = (".bst", ".json", ".ubj")
CARD_SCHEMA_VERSION = 1


class Histogram(BaseModel):
    """A binned reference distribution: inner cut points, the share of each bin, and the share of missing values."""

    edges: list[float]
    shares: list[float]
    missing_share: float = 0.0


class TierStats(BaseModel):
    share: float
    conversion_rate: float
    lift: float


class Metrics(BaseModel):
    auc: float
    log_loss: float
    base_rate: float
    rows_train: int
    rows_valid: int
    rows_test: int
    best_iteration: int  # xgboost's 0-based index of the round early stopping chose
    trees: int | None = (
        None  # trees in the file served (best_iteration + 1); cards written before 2026-12-08 lack it
    )
    tiers: dict[str, TierStats]  # measured on the held-out test split


# The name is the InferenceService's (a DNS-1035 label) and becomes the lake's `model=<name>` folder; the version is
# stamped on every answer, in URLs (/v2/models/<name>/versions/<version>), metric labels and the lake. Neither may
# hold a path separator, a control character or anything a URL or header would have to escape.
MODEL_NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
MODEL_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = CARD_SCHEMA_VERSION
    name: str = Field(pattern=MODEL_NAME_PATTERN)
    version: str = Field(pattern=MODEL_VERSION_PATTERN)
    created_at: datetime
    xgboost_version: str
    objective: str = "binary:logistic"
    booster_file: str
    booster_sha256: str
    feature_names: list[str]
    tier_thresholds: list[float] = Field(min_length=4, max_length=4)
    tier_policy: str
    expected_tier_shares: dict[str, float]
    metrics: Metrics
    training: dict[str, str | int | float]
    reference: dict[str, Histogram] = Field(default_factory=dict, description="per feature, plus 'score'")

    @field_validator("feature_names")
    @classmethod
    def _same_contract(cls, names: list[str]) -> list[str]:
        if tuple(names) != FEATURE_NAMES:
            raise ValueError(
                "the card's feature order differs from this transformer's feature contract "
                "(train the model with this version of contract/features.py)"
            )
        return names

    @field_validator("tier_thresholds")
    @classmethod
    def _ascending_cut_offs(cls, cuts: list[float]) -> list[float]:
        TierMap(cuts)  # when the card loads, not when a server builds its tier map (a traceback at start)
        return cuts

    @property
    def tier_map(self) -> TierMap:
        return TierMap(self.tier_thresholds)

    def dump(self, folder: Path) -> Path:
        path = folder / CARD_FILE
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_booster(folder: Path) -> Path:
    """Exactly the rule of kserve-xgbserver: one file with a booster suffix, else a clear error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    # endswith, as the runtime does: a file named just `.json` is a booster file to it (Path.suffix says none).
    found = sorted(p for p in folder.iterdir() if p.name.endswith(BOOSTER_SUFFIXES) and p.is_file())
    if not found:
        raise FileNotFoundError(f"no booster file ({', '.join(BOOSTER_SUFFIXES)}) in {folder}")
    if len(found) > 1:
        raise RuntimeError(
            f"more than one booster file in {folder}: {[p.name for p in found]}; keep exactly one"
        )
    return found[0]


def load_booster(folder: Path, nthread: int = 1):
    """The artifact's booster, loaded exactly as kserve-xgbserver loads it (`model_file=bytearray(...)`), so every
    consumer — in-process scoring, reason codes, the stand-in predictor, batch scoring — scores with the same model.
    xgboost is imported here, not at module import: the contract itself must stay light."""
    import xgboost as xgb

    return xgb.Booster(params={"nthread": nthread}, model_file=bytearray(find_booster(folder).read_bytes()))


def load_card(folder: Path) -> ModelCard:
    """The card, after checking that the folder's booster is the one it describes (tiers, reasons and the
    version stamped on every answer would otherwise belong to another model)."""
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise FileNotFoundError(f"no {CARD_FILE} in {folder}")
    # libyaml's safe loader (PyYAML's wheels bundle libyaml): the same safe subset, ~6× faster on the card.
    card = ModelCard.model_validate(yaml.load(card_path.read_text(), Loader=yaml.CSafeLoader))
    booster = folder / card.booster_file
    actual = sha256_file(booster)
    if actual != card.booster_sha256:
        raise ValueError(
            f"{booster.name} does not match the card (sha256 {actual[:12]}…, card says "
            f"{card.booster_sha256[:12]}…): the folder mixes two models"
        )
    return card
