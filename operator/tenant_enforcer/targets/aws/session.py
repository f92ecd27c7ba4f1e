"""boto3 clients for a tenant's AWS scope: the standard credential chain, an optional role
to assume per tenant (with its external id), standard-mode retries, and an endpoint
override (tests use moto's server; LocalStack-style setups work the same way)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from tenant_enforcer.model.policy import AwsScope

RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True)
class AwsSettings:
    endpoint_url: str | None = None  # None: AWS itself
    session_name: str = "tenant-enforcer"


class AwsSessions:
    """Clients per (tenant scope, region, service), created once and reused (boto3 clients
    are thread-safe; sessions are not, so each is built under a lock)."""

    def __init__(
        self, settings: AwsSettings | None = None, base: boto3.session.Session | None = None
    ) -> None:
        self.settings = settings or AwsSettings()
        self._base = base or boto3.session.Session()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str | None, str | None, str, str], Any] = {}
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
        if not scope.role_arn:
            return self._base
        sts = self._base.client(
            "sts", region_name=region, endpoint_url=self.settings.endpoint_url, config=RETRIES
        )
        kwargs: dict[str, Any] = {"RoleArn": scope.role_arn, "RoleSessionName": self.settings.session_name}
        if scope.external_id:
            kwargs["ExternalId"] = scope.external_id
        creds = sts.assume_role(**kwargs)["Credentials"]
        # Assumed-role credentials expire (1 h by default); a later issue refreshes them.
        return boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )
