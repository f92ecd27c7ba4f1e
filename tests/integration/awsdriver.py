"""Drive every registered AWS target through the reconcile's observe → plan → act steps, with
the real planner, actuator and prior-state store (real kube-apiserver), an own `AwsSessions`
pointed at moto's server, and a `DirectoryEvidenceStore`: what the operator does, minus the
watch, with hooks a test can use to record the AWS calls made or refuse chosen ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from kubehelpers import Kube, MotoServer

from tenant_enforcer.controller.act import Actuator, ApplyResult
from tenant_enforcer.core.plan import plan
from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import Observed
from tenant_enforcer.state.evidence import DirectoryEvidenceStore
from tenant_enforcer.state.prior import PriorStateStore
from tenant_enforcer.targets.aws.base import AwsTarget
from tenant_enforcer.targets.aws.session import AwsSessions, AwsSettings
from tenant_enforcer.targets.base import Clients, Target, TenantScope
from tenant_enforcer.targets.registry import load_builtin_targets

REGION = "us-east-1"
TAG_KEY = "tenant"
AWS_TARGETS = [cls for cls in load_builtin_targets() if issubclass(cls, AwsTarget)]
# botocore operation names whose IAM action is named differently
IAM_NAMES = {
    "s3:ListBuckets": "s3:ListAllMyBuckets",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "s3:DeleteObjects": "s3:DeleteObject",  # and s3:DeleteObjectVersion for versions
}


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def refusal(service: str, code: str, status: int = 403) -> AWSResponse:
    """A response refusing the call, in the error shape of the service's protocol."""
    error = f"<Error><Code>{code}</Code><Message>injected</Message></Error>"
    body = (
        f"<Response><Errors>{error}</Errors><RequestID>x</RequestID></Response>"
        if service == "ec2"
        else error
    )
    return AWSResponse("http://injected", status, {}, _Body(body.encode()))


class AwsDriver:
    def __init__(
        self, kube: Kube, aws: MotoServer, tenant: str, evidence: Path, ladder: Ladder | None = None
    ) -> None:
        sessions = AwsSessions(AwsSettings(endpoint_url=aws.endpoint))
        self.calls: list[str] = []
        self.refuse: dict[str, str] = {}  # botocore operation name → error code to answer with
        sessions.hooks.append(("before-call", self._record))
        sessions.hooks.append(("before-send", self._refuse))
        self.evidence = DirectoryEvidenceStore(evidence)
        clients = Clients(kube=None, aws=sessions, evidence=self.evidence)
        self.targets: dict[str, Target] = {cls.kind: cls(clients) for cls in AWS_TARGETS}
        namespace = f"state-{tenant}"
        kube.namespace(namespace)
        self.store = PriorStateStore(kube.api, namespace)
        self.actuator = Actuator(self.targets, self.store)
        self.traits = {kind: t.traits() for kind, t in self.targets.items()}
        self.scope = TenantScope(tenant, ladder=ladder, aws=AwsScope((REGION,), TAG_KEY, tenant))

    def _record(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.signing_name}:{model.name}"
        self.calls.append(IAM_NAMES.get(name, name))

    def _refuse(self, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)  # before-send.<service>.<Operation>
        code = self.refuse.get(operation)
        return refusal(service, code) if code else None

    def current_scope(self) -> TenantScope:
        return replace(self.scope, saved=self.store.load(self.scope.tenant))

    def reconcile(self, level: Level) -> ApplyResult:
        scope = self.current_scope()
        inventory = [obs for t in self.targets.values() for obs in t.discover(scope)]
        return self.actuator.run(plan(level, inventory, self.traits), inventory, scope)

    def observed(self, kind: str) -> dict[str, Observed]:
        return {o.ref.name: o for o in self.targets[kind].discover(self.current_scope())}

    def close(self) -> None:
        self.actuator.close()
