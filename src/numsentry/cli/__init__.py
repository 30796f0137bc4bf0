"""Command-line interface (``numsentry``)."""
