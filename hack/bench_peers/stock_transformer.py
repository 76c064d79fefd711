"""Peer (a)/(b): the smallest KServe transformer there is — KServe does everything, we add nothing.

    python -m hack.bench_peers.stock_transformer --model_name lead-scoring --predictor_host 127.0.0.1:9081 \
        --predictor_protocol grpc-v2 --http_port 8080 --grpc_port 8081

Every flag is KServe's own (`kserve.model_server.parser`); ModelServer reads them itself.
"""

from __future__ import annotations

import kserve
from kserve import model_server


class PassThroughTransformer(kserve.Model):
    """preprocess hands the V2 InferRequest on untouched; KServe's default predict() makes the predictor hop."""

    def __init__(self, name: str):
        super().__init__(name)
        self.ready = True

    async def preprocess(self, payload, headers=None):
        return payload


def main() -> None:
    args, _ = model_server.parser.parse_known_args()
    kserve.ModelServer().start([PassThroughTransformer(args.model_name)])


if __name__ == "__main__":
    main()
