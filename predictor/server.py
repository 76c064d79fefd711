"""Off-cluster stand-in for KServe's stock `kserve-xgbserver` runtime.

It loads and predicts exactly as the runtime does — one booster file in the model folder, `xgb.Booster(params=
{"nthread": N}, model_file=bytearray(...))`, `predict(xgb.DMatrix(inputs[0]))` — and uses KServe's own payload helpers,
so the wire behaviour is the runtime's: V1 `instances` → `predictions`; V2 reads `inputs[0]` whatever its name and
answers `output-0` (FP32, shape [N]). It is deliberately no smarter: no feature names, no validation. What works
against it works against the real runtime.

One difference, on purpose: a folder with no booster makes it exit with one line, where the runtime starts serving no
model (its ports open, ModelReady answers NOT_FOUND). Locally a loud exit is the useful answer; what the transformer
does with such a runtime is tested against this stand-in serving another model name.

    python -m predictor.server --model_name lead-scoring --model_dir predictor/model --http_port 8080 --grpc_port 8081
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kserve
import xgboost as xgb
from kserve.errors import InferenceError
from kserve.utils.utils import get_predict_input, get_predict_response

from contract.model_card import load_booster


class XGBoostStandIn(kserve.Model):
    def __init__(self, name: str, model_dir: str, nthread: int):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.nthread = nthread
        self._booster: xgb.Booster | None = None

    def load(self) -> bool:
        self._booster = load_booster(self.model_dir, self.nthread)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        try:
            dmatrix = xgb.DMatrix(get_predict_input(payload), nthread=self.nthread)
            return get_predict_response(payload, self._booster.predict(dmatrix), self.name)
        except Exception as exc:  # noqa: BLE001 - the runtime turns every failure into an InferenceError (HTTP 500)
            raise InferenceError(str(exc)) from exc


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], conflict_handler="resolve")
    parser.add_argument("--model_dir", required=True, help="folder with exactly one .bst/.json/.ubj booster")
    parser.add_argument("--nthread", type=int, default=1)
    args, _ = parser.parse_known_args()
    model = XGBoostStandIn(args.model_name, args.model_dir, args.nthread)
    try:
        model.load()
    except (FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f"predictor: cannot load model: {exc}") from None
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
