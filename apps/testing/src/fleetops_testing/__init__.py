"""Test-only helpers for fleetops; never shipped to hosts."""
