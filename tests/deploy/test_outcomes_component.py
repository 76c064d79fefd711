"""The outcomes component: on top of a real overlay, the transformer's own parser sees --outcomes_uri and an
outcomes spool that is a mounted volume of its own (not inside the scores' spool, whose recovery would adopt it)."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest
import yaml

from tests.deploy.rendering import REPO, kustomize, one, parse_transformer_args, transformer_container
from transformer.sink.journal import max_bytes_for as journal_max_bytes_for

COMPONENT = REPO / "kustomize" / "components" / "outcomes"


@pytest.mark.parametrize("overlay", ["dev-aws", "prod-azure"])
def test_component_enables_the_route_with_its_own_spool_volume(overlay, tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(REPO / "kustomize" / "overlays" / overlay, tmp_path)],
                "components": [os.path.relpath(COMPONENT, tmp_path)],
            }
        )
    )
    isvc = one(kustomize(tmp_path), "InferenceService", "lead-scoring")
    container = transformer_container(isvc)
    args = parse_transformer_args(container)
    assert args.outcomes_uri.endswith("/_outcomes")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in isvc["spec"]["transformer"]["volumes"]}
    assert "emptyDir" in volumes[mounts[args.outcomes_spool_dir]]
    assert mounts[args.outcomes_spool_dir] != mounts[args.sink_spool_dir]
    assert PurePosixPath(args.sink_spool_dir) not in PurePosixPath(args.outcomes_spool_dir).parents
    size_limit_mib = int(volumes[mounts[args.outcomes_spool_dir]]["emptyDir"]["sizeLimit"].removesuffix("Mi"))
    needed = args.outcomes_spool_max_bytes + journal_max_bytes_for(args.outcomes_spool_max_bytes)
    assert needed < size_limit_mib * 1024 * 1024, "the spool bound and its journal's must fit the volume"
