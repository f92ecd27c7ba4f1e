"""Kubernetes targets.  Importing this package registers them, in the order that breaks ties
when raising a level (lifting goes in reverse): notice first, then workloads, then quota."""

from tenant_enforcer.targets.k8s import namespace_notice as namespace_notice

# isort: split
from tenant_enforcer.targets.k8s import workloads as workloads

# isort: split
from tenant_enforcer.targets.k8s import keda as keda

# isort: split
from tenant_enforcer.targets.k8s import quota as quota  # after workloads: lifted before them

# isort: split
from tenant_enforcer.targets.k8s import firewall as firewall

# isort: split
from tenant_enforcer.targets.k8s import deprovision as deprovision  # last: the most disruptive
