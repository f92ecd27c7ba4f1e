"""The one interface every kind of target implements, Kubernetes or AWS alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed

TENANT_LABEL = "tenant-enforcer.io/tenant"
LEVEL_LABEL = "tenant-enforcer.io/level"
MANAGED_BY = {"app.kubernetes.io/managed-by": "tenant-enforcer"}


@dataclass(frozen=True)
class TenantScope:
    """What the controller observed about one tenant: its namespaces with their labels."""

    tenant: str
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Clients:
    """API clients handed to targets; a target takes only what it needs."""

    kube: Any  # kubernetes.client.ApiClient (typed loosely: the client ships no stubs)
    field_manager: str = "tenant-enforcer"


class Target(ABC):
    """discover → (capture prior state) → apply a level → restore.

    `kind` names the objects it handles; `acts_from` is the lowest level at which it changes
    anything.  `rbac` lists the Kubernetes permissions it needs, checked against the Helm
    chart by a test.
    """

    kind: ClassVar[str]
    acts_from: ClassVar[Level]
    rbac: ClassVar[tuple[Mapping[str, Any], ...]] = ()

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    @abstractmethod
    def discover(self, scope: TenantScope) -> list[Observed]:
        """Every object of this kind that belongs to the tenant, with the level we hold it at."""

    @abstractmethod
    def apply(self, ref: ObjectRef, level: Level, ladder: Ladder, scope: TenantScope) -> None:
        """Bring the object to `level`; capture its prior state first if not already captured."""

    @abstractmethod
    def restore(self, ref: ObjectRef, scope: TenantScope) -> None:
        """Give back exactly the state captured before we first changed it."""
