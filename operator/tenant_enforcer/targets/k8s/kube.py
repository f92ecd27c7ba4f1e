"""Kubernetes access for targets: kinds described as data, raw JSON in and out.

Lists read raw JSON (no model validation: 200 workloads decode in milliseconds) and are
paged; patches are JSON merge patches with our field manager.  Errors are classified here,
once (see targets/errors.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from tenant_enforcer.targets.errors import ErrorClass, TargetError

MERGE_PATCH = "application/merge-patch+json"
PAGE = 500


@dataclass(frozen=True)
class KubeKind:
    """How to reach one namespaced kind through the official client: `AppsV1Api` + `deployment`
    gives `list_namespaced_deployment`, `patch_namespaced_deployment_scale`, …"""

    api: str
    singular: str

    def method(self, client_api: Any, verb: str, suffix: str = "") -> Any:
        return getattr(client_api, f"{verb}_namespaced_{self.singular}{suffix}")


@dataclass(frozen=True)
class CustomKind:
    """A namespaced custom resource (KEDA's ScaledObject, say), reached through
    CustomObjectsApi but called with the same argument order as the typed APIs."""

    group: str
    version: str
    plural: str
    api: str = "CustomObjectsApi"

    @property
    def singular(self) -> str:
        return f"{self.plural}.{self.group}"

    def method(self, client_api: Any, verb: str, suffix: str = "") -> Any:
        g, v, p = self.group, self.version, self.plural
        verbs: dict[str, Callable[..., Any]] = {
            "list": lambda ns, **kw: client_api.list_namespaced_custom_object(g, v, ns, p, **kw),
            "read": lambda name, ns, **kw: client_api.get_namespaced_custom_object(g, v, ns, p, name, **kw),
            "patch": lambda name, ns, body, **kw: client_api.patch_namespaced_custom_object(
                g, v, ns, p, name, body, **kw
            ),
            "create": lambda ns, body, **kw: client_api.create_namespaced_custom_object(
                g, v, ns, p, body, **kw
            ),
            "delete": lambda name, ns, **kw: client_api.delete_namespaced_custom_object(
                g, v, ns, p, name, **kw
            ),
        }
        return verbs[verb]

    def served(self, api_client: Any) -> bool:
        """Whether the API server serves this kind (its CRD is installed)."""
        try:
            resources = client.CustomObjectsApi(api_client).get_api_resources(self.group, self.version)
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise TargetError(f"discover {self.group}/{self.version}", exc) from exc
        return any(r.name == self.plural for r in resources.resources)


class Kube:
    def __init__(self, api_client: Any, field_manager: str) -> None:
        self._api_client = api_client
        self.field_manager = field_manager
        self._apis: dict[str, Any] = {}

    def _api(self, name: str) -> Any:
        if name not in self._apis:
            self._apis[name] = getattr(client, name)(self._api_client)
        return self._apis[name]

    def list(
        self, kind: KubeKind | CustomKind, namespace: str, label_selector: str | None = None
    ) -> Iterator[dict[str, Any]]:
        method = kind.method(self._api(kind.api), "list")
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            if label_selector:
                kwargs["label_selector"] = label_selector
            page = json.loads(
                self._call(f"list {kind.singular} in {namespace}", method, namespace, **kwargs).data
            )
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def read(self, kind: KubeKind | CustomKind, namespace: str, name: str) -> dict[str, Any] | None:
        method = kind.method(self._api(kind.api), "read")
        try:
            response = method(name, namespace, _preload_content=False)
        except client.ApiException as exc:
            error = TargetError(f"read {kind.singular} {namespace}/{name}", exc)
            if error.error_class is ErrorClass.GONE:
                return None
            raise error from exc
        result: dict[str, Any] = json.loads(response.data)
        return result

    def patch(
        self,
        kind: KubeKind | CustomKind,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        suffix: str = "",
    ) -> None:
        method = kind.method(self._api(kind.api), "patch", suffix)
        self._call(
            f"patch {kind.singular}{suffix} {namespace}/{name}",
            method,
            name,
            namespace,
            dict(body),
            field_manager=self.field_manager,
            _content_type=MERGE_PATCH,
            _preload_content=False,
        )

    def create(self, kind: KubeKind | CustomKind, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create; False if it already exists (creation is idempotent for us)."""
        method = kind.method(self._api(kind.api), "create")
        try:
            method(namespace, dict(body), field_manager=self.field_manager, _preload_content=False)
        except client.ApiException as exc:
            error = TargetError(f"create {kind.singular} {namespace}", exc)
            if error.error_class is ErrorClass.CONFLICT:
                return False
            raise error from exc
        return True

    def delete(self, kind: KubeKind | CustomKind, namespace: str, name: str) -> bool:
        """Delete with Background propagation; False if it was already gone."""
        method = kind.method(self._api(kind.api), "delete")
        try:
            method(name, namespace, propagation_policy="Background", _preload_content=False)
        except client.ApiException as exc:
            error = TargetError(f"delete {kind.singular} {namespace}/{name}", exc)
            if error.error_class is ErrorClass.GONE:
                return False
            raise error from exc
        return True

    @staticmethod
    def _call(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except client.ApiException as exc:
            raise TargetError(what, exc) from exc
        except OSError as exc:  # connection errors from urllib3 are OSErrors: transient
            raise TargetError(what, exc) from exc


def controlled_by_other(obj: Mapping[str, Any]) -> bool:
    """Objects managed by a controller (a Deployment's ReplicaSets, a CronJob's Jobs) are
    acted on through their owner only."""
    return any(ref.get("controller") for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def marks(obj: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    meta = obj.get("metadata") or {}
    return dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})
