"""The one interface every kind of target implements, Kubernetes or AWS alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from tenant_enforcer.core.plan import TargetTraits
from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed

# Labels and annotations we put on what we enforce; restore removes them again.
ENFORCED_LABEL = "tenant-enforcer.io/enforced-for"  # value: tenant; the focused watch selects on it
LEVEL_LABEL = "tenant-enforcer.io/level"  # on namespaces: the tenant's level
LEVEL_ANNOTATION = "tenant-enforcer.io/level"  # on enforced objects: the level we hold them at
MANAGED_BY = {"app.kubernetes.io/managed-by": "tenant-enforcer"}


@dataclass(frozen=True)
class PriorRecord:
    """The state of an object before our first change: saved once, never overwritten."""

    ref: ObjectRef
    state: Mapping[str, Any]
    captured_at: str = ""


@dataclass(frozen=True)
class TenantScope:
    """What the controller observed and decided about one tenant, handed to every target."""

    tenant: str
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # name → labels
    ladder: Ladder | None = None
    saved: Mapping[ObjectRef, PriorRecord] = field(default_factory=dict)  # prior state by object
    aws: AwsScope | None = None  # None: the tenant has no AWS resources to enforce

    def saved_of_kind(self, kind: str) -> dict[ObjectRef, PriorRecord]:
        return {ref: rec for ref, rec in self.saved.items() if ref.kind == kind}


class EvidenceStore(Protocol):
    """Where evidence snapshots go (a directory or S3): implemented in state/."""

    def put(self, tenant: str, snapshot_id: str, documents: list[Mapping[str, Any]]) -> str:
        """Store `documents` (clean manifests) and return where they are (a path or URL)."""
        ...

    def get(self, tenant: str, snapshot_id: str) -> list[dict[str, Any]]:
        """The documents of a stored snapshot; raises KeyError if there is none."""
        ...

    def snapshots(self, tenant: str) -> list[str]:
        """The ids of the tenant's stored snapshots."""
        ...

    def location(self, tenant: str, snapshot_id: str) -> str | None:
        """Where a complete stored snapshot is (as `put` returned it); None if there is none.
        Reads no document: discovery asks this on every reconcile."""
        ...


@dataclass(frozen=True)
class Clients:
    """API clients handed to targets; a target takes only what it needs."""

    kube: Any  # kubernetes.client.ApiClient
    field_manager: str = "tenant-enforcer"
    evidence: EvidenceStore | None = None
    aws: Any = None  # targets.aws.session.AwsSessions: boto3 clients per tenant and region


class Target(ABC):
    """discover → (prior state saved by the controller) → apply a level → restore.

    `kind` names the objects it handles; `acts_from` is the lowest level at which it changes
    anything (`graded` targets record the exact level).  `rbac` lists the Kubernetes
    permissions it needs, checked against the Helm chart by a test.  `watch` names the
    client method that lists its kind in all namespaces, for the focused watch on enforced
    objects (None: nothing to watch).
    """

    kind: ClassVar[str]
    acts_from: ClassVar[Level]
    graded: ClassVar[bool] = False
    rbac: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    watch: ClassVar[tuple[str, str] | None] = None  # (client API class, list-for-all-namespaces method)

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    @classmethod
    def traits(cls) -> TargetTraits:
        return TargetTraits(cls.acts_from, cls.graded)

    @abstractmethod
    def discover(self, scope: TenantScope) -> list[Observed]:
        """Every object of this kind that belongs to the tenant, with the level we hold it at.

        Objects we removed while enforcing (set aside) are found through `scope.saved`.
        """

    @abstractmethod
    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        """Bring the object to `level` and mark it; idempotent."""

    @abstractmethod
    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        """Give back exactly `prior` and remove our marks.

        Returns what could not be restored safely because someone changed it since we
        enforced it (empty when all was restored); those fields are left as they are.
        """
