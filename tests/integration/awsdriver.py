"""Drive AWS targets (every registered one, or the `kinds` given) through the reconcile's
observe → plan → act steps, with the real planner, actuator and prior-state store (real
kube-apiserver), an own `AwsSessions` pointed at moto's server, and a `DirectoryEvidenceStore`
(or none): what the operator does, minus the watch.  Every AWS call made is recorded as its IAM
action, and chosen operations can be refused with an error in their protocol's shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from kubehelpers import Kube, MotoServer

from tenant_enforcer.controller.act import Actuator, ApplyResult
from tenant_enforcer.core.plan import Action, plan
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
AWS_TARGETS: tuple[type[Target], ...] = tuple(
    cls for cls in load_builtin_targets() if issubclass(cls, AwsTarget)
)
READ_PREFIXES = ("Describe", "List", "Get")
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
# Services (as named in botocore's event names) speaking the query protocol.
QUERY_SERVICES = {"auto-scaling", "elastic-load-balancing-v2", "sts", "iam"}


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def refusal(service: str, code: str, status: int = 403) -> AWSResponse:
    """A response refusing the call, in the error shape of the service's protocol: `service`
    as in botocore's event names (`ec2`, `s3`, `auto-scaling`, `elastic-load-balancing-v2`,
    `sts`)."""
    error = f"<Code>{code}</Code><Message>injected</Message>"
    if service == "ec2":
        body = f"<Response><Errors><Error>{error}</Error></Errors><RequestID>x</RequestID></Response>"
    elif service == "s3":
        body = f"<Error>{error}</Error>"
    elif service in QUERY_SERVICES:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type>{error}</Error>"
            "<RequestId>x</RequestId></ErrorResponse>"
        )
    else:
        raise ValueError(f"no error shape for service {service!r}")
    return AWSResponse("http://injected", status, {}, _Body(body.encode()))


@dataclass
class Fault:
    """An operation answered with `code` (HTTP `status`) until `sent` reaches `times` (None:
    every time); `sent` counts the refusals, retries included (`before-send`: once per try)."""

    code: str
    status: int = 403
    times: int | None = None
    sent: int = 0


class AwsDriver:
    def __init__(
        self,
        kube: Kube,
        aws: MotoServer,
        tenant: str,
        evidence: Path | None,
        ladder: Ladder | None = None,
        *,
        kinds: Iterable[type[Target]] = AWS_TARGETS,
        store: str = "",
    ) -> None:
        """`evidence`: the directory of the evidence store, None for no store at all;
        `store`: a suffix for the prior-state store's namespace, for several drivers of one
        tenant in a test."""
        sessions = AwsSessions(AwsSettings(endpoint_url=aws.endpoint))
        self.calls: list[str] = []  # IAM actions, once per operation (retries not counted)
        self.faults: dict[str, Fault] = {}  # botocore operation name → how to refuse it
        self.last_actions: list[Action] = []  # the plan of the last `reconcile`
        sessions.hooks.append(("before-call", self._record))
        sessions.hooks.append(("before-send", self._refuse))
        self._evidence = DirectoryEvidenceStore(evidence) if evidence is not None else None
        clients = Clients(kube=None, aws=sessions, evidence=self._evidence)
        self.targets: dict[str, Target] = {cls.kind: cls(clients) for cls in kinds}
        namespace = f"state-{tenant}{store}"
        kube.namespace(namespace)
        self.store = PriorStateStore(kube.api, namespace)
        self.actuator = Actuator(self.targets, self.store)
        self.traits = {kind: t.traits() for kind, t in self.targets.items()}
        self.scope = TenantScope(tenant, ladder=ladder, aws=AwsScope((REGION,), TAG_KEY, tenant))

    @property
    def evidence(self) -> DirectoryEvidenceStore:
        assert self._evidence is not None, "this driver has no evidence store"
        return self._evidence

    @property
    def mutating(self) -> list[str]:
        """The calls made that are not reads."""
        return [c for c in self.calls if not c.split(":", 1)[1].startswith(READ_PREFIXES)]

    def refuse(self, operation: str, code: str, status: int = 403, times: int | None = None) -> Fault:
        """Answer the botocore operation (`DeleteBucket`, `EnterStandby`, …) with an error."""
        self.faults[operation] = Fault(code, status, times)
        return self.faults[operation]

    def _record(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.signing_name}:{model.name}"
        self.calls.append(IAM_NAMES.get(name, name))

    def _refuse(self, event_name: str, **_: Any) -> AWSResponse | None:
        service, operation = event_name.split(".", 2)[1:]  # before-send.<service>.<Operation>
        fault = self.faults.get(operation)
        if fault is None or (fault.times is not None and fault.sent >= fault.times):
            return None
        fault.sent += 1
        return refusal(service, fault.code, fault.status)

    def current_scope(self) -> TenantScope:
        return replace(self.scope, saved=self.store.load(self.scope.tenant))

    def observe(self) -> tuple[TenantScope, list[Observed]]:
        scope = self.current_scope()
        return scope, [obs for t in self.targets.values() for obs in t.discover(scope)]

    def reconcile(self, level: Level) -> ApplyResult:
        """Observe, plan (kept in `last_actions`) and act."""
        scope, inventory = self.observe()
        self.last_actions = plan(level, inventory, self.traits)
        return self.actuator.run(self.last_actions, inventory, scope)

    def observed(self, kind: str) -> dict[str, Observed]:
        return {o.ref.name: o for o in self.targets[kind].discover(self.current_scope())}

    def close(self) -> None:
        self.actuator.close()
