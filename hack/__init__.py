"""Developer tooling, runnable as `python -m hack.<tool>`."""
