"""A model card the transformer cannot serve is refused as it loads, in one line: `transformer: cannot start: …`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from contract.model_card import CARD_FILE, load_card
from hack.stack import ROOT


def start_refused(model_dir) -> subprocess.CompletedProcess:
    """`python -m transformer` on `model_dir`, which must refuse to start."""
    started = subprocess.run(
        [sys.executable, "-m", "transformer", "--model_card_uri", str(model_dir), "--http_port", "0"],
        cwd=ROOT,
        env={**os.environ, "API_KEYS": "t:cards-key"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    return started


def test_cut_offs_out_of_order_are_refused_when_the_card_loads(small_artifact, tmp_path):
    """They passed load_card, and the transformer died with a traceback when the Scorer built its tier map."""
    folder = tmp_path / "model"
    shutil.copytree(small_artifact, folder)
    card = yaml.safe_load((folder / CARD_FILE).read_text())
    cuts = card["tier_thresholds"]
    card["tier_thresholds"] = [cuts[0], cuts[2], cuts[1], cuts[3]]
    (folder / CARD_FILE).write_text(yaml.safe_dump(card))
    with pytest.raises(ValueError, match="tier thresholds must be 4 strictly ascending scores"):
        load_card(folder)
    started = start_refused(folder)
    assert "Traceback" not in started.stderr, started.stderr
    assert started.stderr.startswith("transformer: cannot start:") and "strictly ascending" in started.stderr


def test_a_booster_that_outputs_margins_is_refused_in_process(small_artifact, tmp_path):
    """A binary:logitraw booster under a valid card (sha256 and all) started, and its margins were tiered as if they
    were probabilities (a margin of 1.4 is tier A). The in-process predictor reads the booster's own objective."""
    from tests.support.batch_models import booster_variant

    margins = booster_variant(small_artifact, tmp_path / "logitraw", params={"objective": "binary:logitraw"})
    started = start_refused(margins)
    assert "Traceback" not in started.stderr, started.stderr
    assert started.stderr == (
        "transformer: cannot start: the booster's objective is binary:logitraw, not binary:logistic: its outputs "
        "are not probabilities in [0, 1] and cannot be tiered; train it with binary:logistic\n"
    )
