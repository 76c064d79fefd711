"""The only place that knows KServe, ASGI and gRPC: translates wire formats to the Scorer and errors to statuses."""
