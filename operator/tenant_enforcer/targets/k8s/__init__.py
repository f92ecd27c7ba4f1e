"""Kubernetes targets.  Importing this package registers them."""

from tenant_enforcer.targets.k8s import namespace_notice as namespace_notice
