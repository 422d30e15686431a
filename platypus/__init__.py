"""Platypus: business events in, checked against their schema, routed by YAML flows."""

__version__ = "0.1.0.dev0"
