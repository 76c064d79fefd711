"""What training and serving must agree on: the 50 features, their validation, the model card and the tiers.

Imported by `predictor/` (training, the stand-in server), by the transformer and by batch scoring. It imports no
serving framework (kserve, fastapi, starlette, grpc): tests/unit/test_boundaries.py keeps it that way.
"""
