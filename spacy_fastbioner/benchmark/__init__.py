"""Benchmark pipelines in one run on the same docs (accuracy, speed against
the raw transformer forward pass, latency, size, memory) and build pipelines
of the paper's shape."""

from .paper_shape import build_paper_shape_pipelines
from .report import markdown_table, write_report
from .runner import BenchmarkSettings, benchmark_pipelines, benchmark_threads, parse_model_arg

__all__ = [
    "BenchmarkSettings",
    "benchmark_pipelines",
    "benchmark_threads",
    "build_paper_shape_pipelines",
    "markdown_table",
    "parse_model_arg",
    "write_report",
]
