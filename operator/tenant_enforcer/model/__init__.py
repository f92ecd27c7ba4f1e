"""Typed views of our custom resources, parsed from API dicts once, at the edge."""
