"""`python -m transformer`: parse KServe's flags and ours, build the scoring path, start KServe's ModelServer."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from contract.artifact_fetch import fetch_artifact
from contract.model_card import load_card
from transformer import logs
from transformer.auth import KeyFileError, KeyStore
from transformer.cli import build_parser, drift_rate_cap
from transformer.coalesce import Coalescer
from transformer.extras.drift import DriftMonitor
from transformer.extras.reasons import LazyReasonExplainer, ReasonExplainer
from transformer.serving import lean_kserve

log = logging.getLogger("transformer")


def build_recorder(args):
    if not args.sink_uri:
        log.warning("no --sink_uri: scoring results are not recorded in a data lake")
        return None
    from contract.features import FEATURE_NAMES
    from transformer.sink import ScoreSink, SinkConfig

    config = SinkConfig(
        uri=args.sink_uri,
        spool_dir=Path(args.sink_spool_dir),
        flush_records=args.sink_flush_records,
        flush_seconds=args.sink_flush_seconds,
        spool_max_bytes=args.sink_spool_max_bytes,
        include_features=args.sink_include_features,
        feature_names=FEATURE_NAMES,
        encoder=args.sink_encoder,
        uploader=args.sink_uploader,
        journal=args.sink_journal,
        s3_endpoint_url=args.sink_s3_endpoint_url,
        azure_connection_string=args.sink_azure_connection_string
        or os.environ.get("AZURE_STORAGE_CONNECTION_STRING"),
    )
    return ScoreSink(config)


def build_outcome_recorder(args):
    if not args.outcomes_uri:
        return None
    from transformer.sink import SinkConfig
    from transformer.sink.outcomes import outcome_sink

    return outcome_sink(
        SinkConfig(
            uri=args.outcomes_uri,
            spool_dir=Path(args.outcomes_spool_dir),
            flush_records=args.sink_flush_records,
            flush_seconds=args.sink_flush_seconds,
            spool_max_bytes=args.outcomes_spool_max_bytes,
            uploader=args.sink_uploader,  # its child starts with the first outcomes file
            journal=args.sink_journal,
            s3_endpoint_url=args.sink_s3_endpoint_url,
            azure_connection_string=args.sink_azure_connection_string
            or os.environ.get("AZURE_STORAGE_CONNECTION_STRING"),
        )
    )


def build_predictor(args, model_dir: Path):
    if args.legacy_mode == "live":
        from transformer.predictors.legacy import build_legacy_predictor

        return build_legacy_predictor(args)
    if not args.predictor_host:
        from transformer.predictors.inprocess import InProcessBooster

        return InProcessBooster(model_dir)
    from transformer.predictors.hop import GrpcHop, RestHop

    hop = GrpcHop if args.predictor_protocol == "grpc-v2" else RestHop
    if args.predictor_protocol not in {"grpc-v2", "v2"}:
        raise SystemExit(
            f"--predictor_protocol {args.predictor_protocol}: the XGBoost predictor is reached over "
            "grpc-v2 (default) or v2"
        )
    return hop(
        args.predictor_host,
        args.model_name,
        float(args.predictor_request_timeout_seconds),
        int(args.predictor_request_retries),
        bool(args.predictor_use_ssl),
    )


def main(argv: list[str] | None = None) -> None:
    # First of all: the parser below is KServe's, and kserve must come in without the extras it would drag along.
    lean_kserve.import_kserve()
    # The data lake's Arrow buffers come from the C library's malloc instead of pyarrow's default mimalloc pool,
    # which keeps what it once allocated: ~10 MB less RSS under load (docs/performance.md). An operator's own
    # ARROW_DEFAULT_MEMORY_POOL wins. Set before anything imports pyarrow, which reads it once.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.model_name)
    if args.workers > 1:
        # Prometheus metrics would split per process (kserve#2979) and each worker would load its own copies:
        # scale with replicas (Knative does) instead.
        raise SystemExit(
            "--workers > 1 is not supported: metrics would split per process (kserve issue #2979). "
            "Run one worker per pod and scale with replicas (minReplicas/maxReplicas)."
        )
    if args.access_log_format:
        # KServe would import asgi-logger when the server starts and die there with a traceback.
        raise SystemExit(
            "--access_log_format is not supported: KServe hands it to asgi-logger, which is not installed. "
            "Every scoring request gets one JSON log line (README, Observability); uvicorn's access lines "
            "cover the other routes."
        )
    if args.metrics_port is not None:
        from transformer.serving.metrics_port import check_ports

        try:
            check_ports(
                args.metrics_port,
                http_port=args.http_port,
                grpc_port=args.grpc_port if args.enable_grpc else None,
            )
        except ValueError as exc:
            raise SystemExit(f"transformer: cannot start: {exc}") from None
    if not args.model_card_uri:
        raise SystemExit(
            "--model_card_uri (env MODEL_CARD_URI) is required: the storage URI of the model artifact, "
            "the same as the predictor's storageUri"
        )
    try:
        model_dir = fetch_artifact(args.model_card_uri)
        card = load_card(model_dir)
        keys = KeyStore(args.api_keys_file, os.environ.get("API_KEYS"), args.api_keys_reload_seconds)
        predictor = build_predictor(args, model_dir)
        if args.coalesce:
            predictor = Coalescer(predictor, max_rows=args.max_leads)
        # Reason codes need the booster in split mode too; load_card checked it against the card's hash. In live
        # legacy mode the scores come from another model, which the card's booster would not explain: no reasons.
        explainer = (
            None
            if args.legacy_mode == "live"
            else ReasonExplainer.from_model_dir(model_dir)
            if predictor.mode == "inprocess"
            else LazyReasonExplainer(model_dir)
        )
        drift = (
            DriftMonitor(
                card.reference,
                window=args.drift_window,
                publish_every_seconds=args.drift_publish_seconds,
                max_rows_per_second=drift_rate_cap(args),
            )
            if card.reference
            else None
        )
    except (FileNotFoundError, ValueError, RuntimeError, KeyFileError) as exc:
        raise SystemExit(f"transformer: cannot start: {exc}") from None
    if card.name != args.model_name:
        log.warning(
            "model card name differs from --model_name",
            extra={"card_name": card.name, "model_name": args.model_name},
        )
    try:
        recorder = build_recorder(args)
        outcome_recorder = build_outcome_recorder(args)
    except (ValueError, OSError, RuntimeError) as exc:  # a bad --sink_uri; a spool in use (SpoolInUse)
        raise SystemExit(f"transformer: cannot start the data lake sink: {exc}") from None
    shadow = None
    if args.legacy_mode == "shadow":
        from transformer.extras.shadow import ShadowScorer
        from transformer.predictors.legacy import build_legacy_predictor

        try:
            shadow = ShadowScorer(
                build_legacy_predictor(args),
                args.shadow_fraction,
                card.tier_map,
                recorder=recorder,
                max_in_flight=args.shadow_max_in_flight,
                model_name=args.model_name,
            )
        except ValueError as exc:
            raise SystemExit(f"transformer: cannot start: {exc}") from None

    # Imported late: importing kserve costs ~1 s, and a bad flag should fail before that.
    import kserve
    from kserve.predictor_config import PredictorConfig

    from transformer.scoring import Extras, Scorer, ScoringLimits
    from transformer.serving import app as server_app
    from transformer.serving import grpc_servicer
    from transformer.serving.drain import Drain
    from transformer.serving.event_loop import use_event_loop
    from transformer.serving.kserve_model import LeadScoringModel
    from transformer.serving.repository import NoModelRepository

    limits = ScoringLimits(
        max_leads=args.max_leads,
        max_reported=args.max_errors_reported,
        reasons_max=args.reasons_max,
        reasons_max_leads=args.reasons_max_leads,
    )
    extras = Extras(
        recorder=recorder,
        record_features=args.sink_include_features,
        explainer=explainer,
        drift=drift,
        shadow=shadow,
    )
    scorer = Scorer(card, predictor, keys, model_name=args.model_name, limits=limits, extras=extras)
    model = LeadScoringModel(args.model_name, scorer)
    drain = Drain(args.drain_delay_seconds, args.drain_seconds)
    outcomes = None
    if outcome_recorder is not None:
        from transformer.outcome_intake import OutcomeIntake

        outcomes = OutcomeIntake(
            keys, outcome_recorder, max_outcomes=args.max_outcomes, max_reported=args.max_errors_reported
        )
        outcome_recorder.add_drop_listener(outcomes.forget)  # a dropped outcome's resend must be written
    readiness = server_app.install(
        scorer,
        recorder=recorder,
        max_body_bytes=args.max_body_bytes,
        drain=drain,
        drain_seconds=args.drain_seconds,
        enable_docs=args.enable_docs_url,
        outcomes=outcomes,
    )
    predictor_config = None
    if args.predictor_host:
        predictor_config = PredictorConfig(
            predictor_host=args.predictor_host,
            predictor_protocol=args.predictor_protocol,
            predictor_use_ssl=args.predictor_use_ssl,
            predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
            # KServe hands this to gRPC as maxAttempts, which must be 0 (no policy) or >= 2.
            predictor_request_retries=args.predictor_request_retries + 1
            if args.predictor_request_retries
            else 0,
            # Readiness follows the predictor: Knative stops routing here while the predictor is unreachable.
            predictor_health_check=True,
        )
    use_event_loop(args.event_loop)
    log.info(
        "starting",
        extra={
            "model": args.model_name,
            "version": card.version,
            "mode": predictor.mode,
            "predictor_host": args.predictor_host,
            "http_port": args.http_port,
            "grpc_port": args.grpc_port,
            "metrics_port": args.metrics_port or args.http_port,
            "sink": bool(recorder),
        },
    )
    server = kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        grace_period=args.drain_seconds,  # float: int() made 0.5 s no grace at all
        predictor_config=predictor_config,
    )
    server.model_repository_extension = NoModelRepository()  # one model from its card: nothing to (un)load
    grpc_servicer.install()  # model versions and datatypes checked as on REST
    readiness.registry = server.registered_models
    if args.fast_path:
        from kserve.model_server import app

        from transformer.serving import fast_path as fast_routes

        fast_routes.install(app, scorer, args.max_body_bytes)
    if args.metrics_port is not None:
        from kserve.model_server import app

        from transformer.serving.metrics_port import MetricsOnOwnPort, serve_metrics

        app.add_middleware(MetricsOnOwnPort)  # KServe always mounts /metrics on the API port
        try:
            serve_metrics(args.metrics_port)
        except ValueError as exc:
            raise SystemExit(f"transformer: cannot start: {exc}") from None
    drain.attach(server)
    with contextlib.suppress(KeyboardInterrupt):
        server.start([model])


if __name__ == "__main__":
    sys.exit(main())
