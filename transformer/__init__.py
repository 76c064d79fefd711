"""Lead-scoring transformer: a KServe custom transformer in front of the stock XGBoost server."""
