"""tenant-enforcer: execute acceptable-use verdicts against a tenant's workloads, reversibly."""

__version__ = "0.1.0"
