"""Model folders for the batch tests, made from a trained artifact: the same card (version label included) over a
changed booster, with the card's sha256 updated so `load_card` accepts the pair, as a careless retrain would ship."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import yaml

from contract.model_card import CARD_FILE, find_booster, load_booster, sha256_file


def booster_variant(
    source: Path, target: Path, *, params: dict | None = None, note: str | None = None
) -> Path:
    """A copy of the artifact folder `source` at `target` whose booster has `params` set (e.g. another objective)
    and/or a `note` attribute (other bytes, the same scores); the card is the source's with the new sha256."""
    shutil.copytree(source, target)
    booster = load_booster(target)
    if params:
        booster.set_param(params)
    if note:
        booster.set_attr(note=note)
    path = find_booster(target)
    path.write_bytes(
        bytes(booster.save_raw(path.suffix.lstrip(".") if path.suffix != ".bst" else "deprecated"))
    )
    card = yaml.safe_load((target / CARD_FILE).read_text())
    card["booster_sha256"] = sha256_file(path)
    (target / CARD_FILE).write_text(yaml.safe_dump(card, sort_keys=False))
    return target


def artifact_tarball(source: Path, target: Path) -> Path:
    """The artifact folder's files at the top of a .tar.gz: what kserve-storage unpacks from an http(s) URL."""
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(source.iterdir()):
            archive.add(path, arcname=path.name)
    return target
