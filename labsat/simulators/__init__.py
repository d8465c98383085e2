"""Simulated instruments: torch physics models of the bench devices, usable with ``driver: sim``."""
