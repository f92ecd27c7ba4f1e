"""Saved state: the prior state of what we changed (never in status, never where tenants write)."""
