"""Notice: mark each tenant namespace with the level it is held at (`tenant-enforcer.io/level`).

The label is ours alone (we never touch a tenant's labels), so restoring means removing it;
it is also what tenants and admission policies see first.
"""

from __future__ import annotations

from kubernetes import client

from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.base import LEVEL_LABEL, Target, TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.registry import register


def _held_level(labels: dict[str, str] | None) -> Level:
    value = (labels or {}).get(LEVEL_LABEL)
    try:
        return Level.parse(value) if value else Level.NONE
    except ValueError:
        return Level.NONE  # a label we did not write: overwrite it on the next apply


@register
class NamespaceNoticeTarget(Target):
    kind = "Namespace"
    acts_from = Level.NOTICE
    rbac = ({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "patch"]},)

    def discover(self, scope: TenantScope) -> list[Observed]:
        return [
            Observed(ObjectRef(self.kind, name), _held_level(dict(labels)))
            for name, labels in sorted(scope.namespaces.items())
        ]

    def apply(self, ref: ObjectRef, level: Level, ladder: Ladder, scope: TenantScope) -> None:
        self._patch(ref, level.api_name)

    def restore(self, ref: ObjectRef, scope: TenantScope) -> None:
        self._patch(ref, None)

    def _patch(self, ref: ObjectRef, value: str | None) -> None:
        api = client.CoreV1Api(self.clients.kube)
        try:
            api.patch_namespace(
                ref.name,
                {"metadata": {"labels": {LEVEL_LABEL: value}}},
                field_manager=self.clients.field_manager,
            )
        except client.ApiException as exc:
            error = TargetError(f"label {ref}", exc)
            if error.error_class is not ErrorClass.GONE:
                raise error from exc
