"""The job's gauges: one series per version (and tier), NaN left out, written as a textfile and pushed to a
Pushgateway (here a loopback HTTP server standing in for its PUT API)."""

import http.server
import threading

from prometheus_client.parser import text_string_to_metric_families

from quality.gauges import publish

ROWS = [
    {
        "model_name": "lead-scoring",
        "model_version": "v1",
        "tier": "all",
        "auc": 0.8,
        "log_loss": 0.25,
        "brier": 0.07,
        "calibration_error": 0.01,
        "conversion_rate": 0.09,
        "label_coverage": 0.5,
        "labelled_leads": 1000,
        "reference_auc": float("nan"),
    },
    {
        "model_name": "lead-scoring",
        "model_version": "v1",
        "tier": "A",
        "conversion_rate": 0.36,
        "lift": 4.0,
        "labelled_leads": 100,
    },
    {
        "model_name": "lead-scoring",
        "model_version": "v1",
        "tier": "E",
        "conversion_rate": 0.0,
        "lift": 0.0,
        "labelled_leads": 300,
    },
]


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, s.labels.get("tier")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_textfile_and_push_carry_the_same_series(tmp_path):
    received = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 - the http.server naming
            received.append((self.path, self.rfile.read(int(self.headers["content-length"])).decode()))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        publish(
            ROWS,
            1_800_000_000.0,
            textfile=str(tmp_path / "q.prom"),
            pushgateway=f"http://127.0.0.1:{server.server_port}",
        )
    finally:
        server.shutdown()
    written = samples((tmp_path / "q.prom").read_text())
    assert written[("lead_scoring_quality_auc", None)] == 0.8
    assert written[("lead_scoring_quality_tier_lift", "A")] == 4.0
    assert written[("lead_scoring_quality_tier_labelled_leads", "E")] == 300
    assert written[("lead_scoring_quality_last_success_timestamp_seconds", None)] == 1_800_000_000.0
    assert ("lead_scoring_quality_reference_auc", None) not in written, "NaN is not published"
    ((path, body),) = received
    assert path == "/metrics/job/lead-scoring-quality"
    assert 'lead_scoring_quality_tier_lift{model_name="lead-scoring",model_version="v1",tier="A"} 4.0' in body
