"""boto3 clients for a tenant's AWS scope: the standard credential chain, an optional role
to assume per tenant (with its external id), standard-mode retries, and an endpoint
override (tests use moto's server; LocalStack-style setups work the same way)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from tenant_enforcer.model.policy import AwsScope

RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True)
class AwsSettings:
    endpoint_url: str | None = None  # None: AWS itself
    session_name: str = "tenant-enforcer"
    role_duration_seconds: int | None = None  # DurationSeconds of AssumeRole; None: AWS's (1 h)


class _Assumed(CredentialProvider):
    """The one provider of a role session's botocore session: the role's credentials."""

    METHOD = "sts-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self.credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self.credentials


class AwsSessions:
    """Clients per (tenant scope, region, service), created once and reused (boto3 clients
    are thread-safe; sessions are not, so each is built under a lock).  A role is assumed
    once per (role, external id); its session serves every region, and its credentials
    renew themselves before they expire."""

    def __init__(
        self, settings: AwsSettings | None = None, base: boto3.session.Session | None = None
    ) -> None:
        self.settings = settings or AwsSettings()
        self._base = base or boto3.session.Session()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str | None, str | None, str, str], Any] = {}
        self._roles: dict[tuple[str, str | None], boto3.session.Session] = {}
        self.hooks: list[tuple[str, Any]] = []  # (event name, handler) registered on every client

    def client(self, scope: AwsScope, service: str, region: str) -> Any:
        key = (scope.role_arn, scope.external_id, region, service)
        with self._lock:
            if key not in self._clients:
                session = self._session_for(scope, region)
                made = session.client(  # type: ignore[call-overload]  # service is a variable
                    service, region_name=region, endpoint_url=self.settings.endpoint_url, config=RETRIES
                )
                for event, handler in self.hooks:
                    made.meta.events.register(event, handler)
                self._clients[key] = made
            return self._clients[key]

    def _session_for(self, scope: AwsScope, region: str) -> boto3.session.Session:
        """The base session, or the role's (assumed now: a failure raises here, to the caller)."""
        if not scope.role_arn:
            return self._base
        key = (scope.role_arn, scope.external_id)
        if key not in self._roles:
            assume = self._assume_role(scope, region)
            # botocore's RefreshableCredentials re-run `assume` from the signer, under their own
            # lock, when fewer than 15 min are left (blocking, and raising on failure, under 10 min).
            # They are handed over through the session's credential_provider component, the way
            # botocore resolves credentials itself: public API, no private attribute. Not
            # AssumeRoleCredentialFetcher: it builds a new STS client on each refresh, and
            # DeferredRefreshableCredentials would hide a failed first assume until first use.
            credentials = RefreshableCredentials.create_from_metadata(
                metadata=assume(), refresh_using=assume, method=_Assumed.METHOD
            )
            core = botocore.session.Session()
            core.register_component("credential_provider", CredentialResolver([_Assumed(credentials)]))
            self._roles[key] = boto3.session.Session(botocore_session=core)
        return self._roles[key]

    def _assume_role(self, scope: AwsScope, region: str) -> Callable[[], dict[str, str]]:
        """A function assuming the scope's role, answering in RefreshableCredentials' terms."""
        sts = self._base.client(
            "sts", region_name=region, endpoint_url=self.settings.endpoint_url, config=RETRIES
        )
        kwargs: dict[str, Any] = {"RoleArn": scope.role_arn, "RoleSessionName": self.settings.session_name}
        if scope.external_id:
            kwargs["ExternalId"] = scope.external_id
        if self.settings.role_duration_seconds:
            kwargs["DurationSeconds"] = self.settings.role_duration_seconds

        def assume() -> dict[str, str]:
            creds = sts.assume_role(**kwargs)["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        return assume
