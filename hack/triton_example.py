"""Score two leads with NVIDIA's stock tritonclient over gRPC (V2 tensor form) — what a client team would write.

python -m hack.triton_example --url localhost:8081 --api-key <key>
"""

from __future__ import annotations

import argparse

import numpy as np
import tritonclient.grpc as grpcclient

from predictor.synthetic import sample_features


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="localhost:8081")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--leads", type=int, default=2)
    args = parser.parse_args()
    client = grpcclient.InferenceServerClient(url=args.url)
    leads = sample_features(args.leads, seed=11).astype(np.float32)
    tensor = grpcclient.InferInput("leads", list(leads.shape), "FP32")
    tensor.set_data_from_numpy(leads)
    ids = grpcclient.InferInput("lead_id", [args.leads], "BYTES")
    ids.set_data_from_numpy(np.array([f"lead-{i}".encode() for i in range(args.leads)], dtype=object))
    result = client.infer("lead-scoring", [tensor, ids], headers={"x-api-key": args.api_key})
    for lead_id, score, tier in zip(
        result.as_numpy("lead_id"), result.as_numpy("score"), result.as_numpy("tier"), strict=True
    ):
        print(f"{lead_id.decode()}: score {score:.4f}, tier {tier.decode()}")


if __name__ == "__main__":
    main()
