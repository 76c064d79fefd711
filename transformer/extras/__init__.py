"""Opt-in additions to the scoring path: reason codes, drift monitoring, shadow scoring against a legacy endpoint."""
