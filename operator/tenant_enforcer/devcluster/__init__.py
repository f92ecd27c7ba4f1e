"""A local Kubernetes control plane built from Go sources: for the demo and the tests.

Not used by the operator itself; it lives in the package so that `tenant-enforcer
dev-cluster` and the pytest fixtures share one implementation.
"""
