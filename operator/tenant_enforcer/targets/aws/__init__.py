"""AWS targets (boto3).  Importing this package registers them after the Kubernetes ones."""

from tenant_enforcer.targets.aws import compute as compute

# isort: split
from tenant_enforcer.targets.aws import firewall as firewall

# isort: split
from tenant_enforcer.targets.aws import deprovision as deprovision
