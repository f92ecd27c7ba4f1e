"""Deprovision on AWS: evidence first, then the tenant's instances terminated and its load
balancers deleted, verified.  Buckets are kept for the ladder's retention period, with their
configuration in the evidence; after it they are emptied and deleted only if the ladder says so.

Three targets, registered in this order (instances go before their load balancers, buckets
last): `TerminatedInstanceTarget` (`instances`), `DeletedLoadBalancerTarget`
(`load_balancers`) and `DeprovisionedBucketTarget` (`buckets`).  `evidence` holds their
shared base: the evidence documents and how they are stored.

What marks progress is the prior-state record the actuator saves before the first change
(the instance's volumes; the load balancer's ARN and target groups; the bucket's name, whose
record's capture time starts the retention): a tenant resource with a record that still
exists is a step under way (`pending`), finished by the next reconcile; one with a record that
is gone (or terminated) is held at Deprovision.  A resource the tenant terminated itself (no
record) is left alone.

Lifting re-creates nothing: the restore message names the evidence location and the EBS
snapshot ids, and the record is dropped.

Importing this package registers the three targets, in the order of the imports below (the
planner breaks ties by registration order; `isort: split` keeps a formatter from reordering
them); the rest re-exports the names of the former single `deprovision` module.
"""

from tenant_enforcer.targets.aws.base import TAGS_CHUNK
from tenant_enforcer.targets.aws.deprovision.evidence import (
    API_VERSION,
    ELB_READS,
    S3_READS,
    AwsDeprovisionTarget,
    DeprovisionIncomplete,
    document,
)

# isort: split
from tenant_enforcer.targets.aws.deprovision.instances import (
    EVIDENCE_TAG,
    GONE_STATES,
    MAX_TAG_VALUE,
    SNAPSHOT_INSTANCE_TAG,
    SNAPSHOT_TENANT_TAG,
    TerminatedInstanceTarget,
    instance_volumes,
    snapshot_description,
)

# isort: split
from tenant_enforcer.targets.aws.deprovision.load_balancers import DeletedLoadBalancerTarget

# isort: split
from tenant_enforcer.targets.aws.deprovision.buckets import DeprovisionedBucketTarget

__all__ = [
    "API_VERSION",
    "ELB_READS",
    "EVIDENCE_TAG",
    "GONE_STATES",
    "MAX_TAG_VALUE",
    "S3_READS",
    "SNAPSHOT_INSTANCE_TAG",
    "SNAPSHOT_TENANT_TAG",
    "TAGS_CHUNK",
    "AwsDeprovisionTarget",
    "DeletedLoadBalancerTarget",
    "DeprovisionIncomplete",
    "DeprovisionedBucketTarget",
    "TerminatedInstanceTarget",
    "document",
    "instance_volumes",
    "snapshot_description",
]
