"""A transformer on either REST path, for tests that hold both to the same answers: the fast JSON path (default)
and KServe's own routes (`--fast_path false`), each with a file:// lake flushed every 0.2 s."""

from __future__ import annotations

from hack.stack import Server, start_transformer

REST_PATHS = ["fast_path", "kserve_rest"]


def start_on_rest_path(path: str, artifact, tmp_path_factory, name: str, key: str) -> Server:
    lake = tmp_path_factory.mktemp(f"{name}-lake")
    transformer = start_transformer(
        artifact,
        tmp_path_factory.mktemp(f"{name}-logs"),
        api_keys=f"{name}:{key}",
        extra_args=[
            "--sink_uri",
            lake.as_uri(),
            "--sink_spool_dir",
            str(tmp_path_factory.mktemp(f"{name}-spool")),
            "--sink_flush_seconds",
            "0.2",
            "--fast_path",
            str(path == "fast_path").lower(),
        ],
    )
    transformer.wait_ready()
    transformer.lake = lake
    return transformer
