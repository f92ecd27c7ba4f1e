"""Firewall on AWS: the tenant's instances quarantined, its ALB listeners answering 503, its
buckets closed to the public and to everyone's data access.

Five targets, registered in this order (raising goes in this order, lifting in reverse):
`QuarantineGroupTarget` and `QuarantineTarget` (`quarantine`: the security group, then the
network interfaces moved into it), `LoadBalancerListenerTarget` and `LoadBalancerRuleTarget`
(`listeners`: ELBv2 default actions, then every other rule) and `BucketTarget` (`buckets`:
S3).  `base` holds what they share.

What marks a resource as ours: the saved prior state (the operator's own store) and what we
set (the quarantine group, the fixed response, our Sid), never a tenant-writable tag alone.
Every write is idempotent; a level cut short by a crash is found half-applied by the next
discovery (saved but not yet set: `drifted`) and finished by re-asserting.

Importing this package registers the five targets.  The planner breaks ties by registration
order, so the submodules are imported in that order below (the `isort: split` markers keep a
formatter from sorting them alphabetically); the rest re-exports the names of the former
single `firewall` module.
"""

from tenant_enforcer.targets.aws.base import TAGS_CHUNK
from tenant_enforcer.targets.aws.firewall.base import FirewallTarget, NotYetSafe, chunks

# isort: split
from tenant_enforcer.targets.aws.firewall.quarantine import (
    FILTER_CHUNK,
    LIVE_INSTANCE_STATES,
    QUARANTINE_PREFIX,
    QUARANTINE_TAG,
    Ec2Firewall,
    QuarantineGroupTarget,
    QuarantineTarget,
    group_ids,
    has_rules,
    quarantine_name,
)

# isort: split
from tenant_enforcer.targets.aws.firewall.listeners import (
    FIXED_503,
    LoadBalancerListenerTarget,
    LoadBalancerRuleTarget,
    comparable_actions,
    is_fixed_503,
    listener_of,
    listener_ref_name,
    rule_ref_name,
)

# isort: split
from tenant_enforcer.targets.aws.firewall.buckets import (
    DENIED_S3_ACTIONS,
    FIREWALL_SID,
    PAB_ALL_ON,
    BucketTarget,
    deny_statement,
    our_statement,
    parse_policy,
    statements,
    with_our_statement,
    without_our_statement,
)

__all__ = [
    "DENIED_S3_ACTIONS",
    "FILTER_CHUNK",
    "FIREWALL_SID",
    "FIXED_503",
    "LIVE_INSTANCE_STATES",
    "PAB_ALL_ON",
    "QUARANTINE_PREFIX",
    "QUARANTINE_TAG",
    "TAGS_CHUNK",
    "BucketTarget",
    "Ec2Firewall",
    "FirewallTarget",
    "LoadBalancerListenerTarget",
    "LoadBalancerRuleTarget",
    "NotYetSafe",
    "QuarantineGroupTarget",
    "QuarantineTarget",
    "chunks",
    "comparable_actions",
    "deny_statement",
    "group_ids",
    "has_rules",
    "is_fixed_503",
    "listener_of",
    "listener_ref_name",
    "our_statement",
    "parse_policy",
    "quarantine_name",
    "rule_ref_name",
    "statements",
    "with_our_statement",
    "without_our_statement",
]
