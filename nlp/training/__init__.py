"""Reproducible training commands for the heads (and the encoder adapter)."""
