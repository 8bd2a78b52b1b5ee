"""Typed configuration, validated once at start-up."""
