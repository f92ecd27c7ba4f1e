"""Which namespaces a tenant's policy may act on: protected scope and conflicts. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tenant_enforcer.model.policy import PROTECTED_LABEL, PROTECTED_NAMESPACES, TenantPolicy

PROTECTED = "ProtectedNamespace"
CONFLICT = "NamespaceConflict"
_EPOCH_END = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Scope:
    namespaces: tuple[str, ...]
    problem_reason: str | None = None
    problem: str | None = None


def precedence(policy: TenantPolicy) -> tuple[datetime, str]:
    """The earlier policy keeps a contested namespace; the name breaks ties."""
    return (policy.created_at or _EPOCH_END, policy.name)


def is_protected(namespace: str, labels: Mapping[str, str], operator_namespace: str) -> bool:
    return (
        namespace in PROTECTED_NAMESPACES
        or namespace == operator_namespace
        or labels.get(PROTECTED_LABEL) == "true"
    )


def resolve_scope(
    policy: TenantPolicy,
    namespaces: Mapping[str, Mapping[str, str]],
    claimants: Mapping[str, Sequence[TenantPolicy]],
    operator_namespace: str,
    held: Mapping[str, frozenset[str]] | None = None,
) -> Scope:
    """The existing namespaces `policy` owns, or the reason it may act on none of them.

    A policy that reaches a protected namespace, or one an earlier policy already claims,
    is refused as a whole: acting on the rest would half-apply a level.  `held` maps policy
    names to the namespaces their status already lists: a policy that holds a namespace
    keeps it against any newcomer (creation times have one-second resolution).
    """
    held = held or {}

    def claim_order(ns: str) -> Callable[[TenantPolicy], tuple[bool, datetime, str]]:
        return lambda p: (ns not in held.get(p.name, frozenset()), *precedence(p))

    owned = sorted(n for n, labels in namespaces.items() if policy.owns(n, labels))
    protected = sorted(
        {n for n in owned if is_protected(n, namespaces[n], operator_namespace)}
        | {n for n in policy.namespace_names if n in PROTECTED_NAMESPACES or n == operator_namespace}
    )
    if protected:
        return Scope(
            (),
            PROTECTED,
            f"selects protected namespaces {', '.join(protected)}; "
            "nothing is enforced until the policy stops selecting them",
        )
    taken = {}
    for ns in owned:
        first = min(claimants.get(ns, [policy]), key=claim_order(ns))
        if first.name != policy.name:
            taken[ns] = first.name
    if taken:
        detail = ", ".join(f"{ns} (claimed by TenantPolicy {other})" for ns, other in sorted(taken.items()))
        return Scope((), CONFLICT, f"namespaces already belong to an earlier policy: {detail}")
    return Scope(tuple(owned))
