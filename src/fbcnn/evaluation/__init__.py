"""Measuring: the paper's metrics, evaluation over image sets, reports, benchmarks."""
