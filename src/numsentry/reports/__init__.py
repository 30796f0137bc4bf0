"""Findings, rules and the renderers (text, json, sarif, github)."""
