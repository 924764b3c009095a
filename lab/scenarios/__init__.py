"""Scenario modules: one plain module per scenario (issue #6)."""
