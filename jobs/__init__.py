"""Flink job graphs and entry points."""
