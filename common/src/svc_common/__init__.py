"""Shared building blocks of the six services."""
