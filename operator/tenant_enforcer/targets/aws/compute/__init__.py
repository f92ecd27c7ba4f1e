"""ScaleDown on the tenant's AWS compute: Auto Scaling groups and standalone EC2 instances.

An Auto Scaling group keeps its instances: its processes are suspended, its InService
instances moved to Standby and stopped, its sizes set to 0 (`groups`); an instance that is
not in a group is stopped (`instances`; a group's instances are reached through the group).
Each object is read with its service's own tag filter, and the tenant tag is checked again on
every item returned (never act on what a filter let through).  `common` holds what they share.

Prior state is exactly what apply changes (sizes, suspended processes and the group's
instances; the instance's running/stopped state), saved by the actuator before the first
change.  The tag `ENFORCED_TAG=<level>` only marks an object as ours: it is written first on
apply and removed last on restore, so after a crash the next reconcile finishes either.
Objects we hold are also looked up through their saved records: one that lost the tenant tag
is still given back, one that is gone has its record dropped on the lift.

Importing this package registers the two targets, AutoScalingGroup then Ec2Instance (the
planner breaks ties by registration order; `isort: split` keeps a formatter from reordering
the imports below); the rest re-exports the names of the former single `compute` module.
"""

from tenant_enforcer.targets.aws.compute.common import (
    ASG_NAME_TAG,
    HELD_SUSPENDED,
    LIVE_STATES,
    PROCESSES,
    RUNNING,
    SIZES,
    STOPPED,
    ComputeTarget,
    NotYet,
    held_level,
)

# isort: split
from tenant_enforcer.targets.aws.compute.groups import AutoScalingGroupTarget

# isort: split
from tenant_enforcer.targets.aws.compute.instances import Ec2InstanceTarget

__all__ = [
    "ASG_NAME_TAG",
    "HELD_SUSPENDED",
    "LIVE_STATES",
    "PROCESSES",
    "RUNNING",
    "SIZES",
    "STOPPED",
    "AutoScalingGroupTarget",
    "ComputeTarget",
    "Ec2InstanceTarget",
    "NotYet",
    "held_level",
]
