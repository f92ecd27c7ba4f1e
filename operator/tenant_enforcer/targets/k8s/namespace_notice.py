"""Notice: mark each tenant namespace with the level it is held at (`tenant-enforcer.io/level`).

The label is ours alone (we never touch a tenant's labels), so restoring means removing it;
it is also what tenants and admission policies see first.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubernetes import client

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.base import LEVEL_LABEL, PriorRecord, Target, TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.k8s.kube import MERGE_PATCH
from tenant_enforcer.targets.registry import register


def _held_level(labels: Mapping[str, str]) -> Level:
    value = labels.get(LEVEL_LABEL)
    try:
        return Level.parse(value) if value else Level.NONE
    except ValueError:
        return Level.NONE  # a label we did not write: overwritten on the next apply


@register
class NamespaceNoticeTarget(Target):
    kind = "Namespace"
    acts_from = Level.NOTICE
    graded = True  # the label shows the tenant's exact level
    rbac = ({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "patch"]},)

    def discover(self, scope: TenantScope) -> list[Observed]:
        # The controller watches namespaces already: no API call needed here.
        return [
            Observed(ObjectRef(self.kind, name), _held_level(labels))
            for name, labels in sorted(scope.namespaces.items())
        ]

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        self._patch(ref, level.api_name)

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        self._patch(ref, None)
        return []

    def _patch(self, ref: ObjectRef, value: str | None) -> None:
        api = client.CoreV1Api(self.clients.kube)
        try:
            api.patch_namespace(
                ref.name,
                {"metadata": {"labels": {LEVEL_LABEL: value}}},
                field_manager=self.clients.field_manager,
                _content_type=MERGE_PATCH,
            )
        except client.ApiException as exc:
            error = TargetError(f"label {ref}", exc)
            if error.error_class is not ErrorClass.GONE:
                raise error from exc
