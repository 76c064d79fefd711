"""Where scores come from: the gRPC/REST hop to kserve-xgbserver, an in-process booster, legacy endpoints."""
