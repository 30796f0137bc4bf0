"""Analyses over an interpretation: `check` (hazards over boxes)."""
