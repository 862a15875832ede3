"""A small edc-style clinic schema for the entry-order benchmark (bench/entry.py)."""
