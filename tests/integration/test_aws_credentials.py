"""Assumed-role credentials of `AwsSessions`, against moto in server mode.

Time is not mocked: botocore renews refreshable credentials when fewer than 15 minutes are
left, so a role assumed for 900 s (`role_duration_seconds`, the least AWS allows) is due
for renewal at once, and every signed request assumes the role again; with AWS's default
hour it is assumed only once.  What each AssumeRole sent and answered, and the access key
each request was signed with, are recorded with botocore event hooks (public events, no
private attributes): on the base session for the STS client, on `AwsSessions.hooks` for
the tenant's clients.

moto (5.2.5) behaviours relied on: each AssumeRole answers a new access key; the role need
not exist and the ExternalId is not checked against the trust policy (hence the recorded
request parameters); with `POST /moto-api/reset-auth` (body `0`) every request is
authorised by moto's IAM, where the test's own keys belong to no user, so AssumeRole fails
while the credentials of a role assumed beforehand are judged by the role's policies.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from kubehelpers import MotoServer

from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.targets.aws.session import AwsSessions, AwsSettings

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
SIGNED_WITH = re.compile(r"Credential=([^/]+)/")


class Recorder:
    """AssumeRole requests and answers (hooks on the base session, so on its STS client) and
    the access key of each request the tenant's clients signed."""

    def __init__(self) -> None:
        self.assume_params: list[dict[str, Any]] = []
        self.assumed_keys: list[str] = []
        self.signed_keys: list[str] = []

    def on_params(self, params: dict[str, Any], **_: Any) -> None:
        self.assume_params.append(dict(params))

    def on_answer(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Credentials" in parsed:
            self.assumed_keys.append(parsed["Credentials"]["AccessKeyId"])

    def on_send(self, request: Any, **_: Any) -> None:
        found = SIGNED_WITH.search(request.headers.get("Authorization", b"").decode())
        assert found, request.headers
        self.signed_keys.append(found.group(1))


def sessions_for(
    aws: MotoServer, recorder: Recorder, duration: int | None = None
) -> AwsSessions:
    base = boto3.session.Session()
    base.events.register("provide-client-params.sts.AssumeRole", recorder.on_params)
    base.events.register("after-call.sts.AssumeRole", recorder.on_answer)
    sessions = AwsSessions(AwsSettings(endpoint_url=aws.endpoint, role_duration_seconds=duration), base)
    sessions.hooks.append(("before-send", recorder.on_send))
    return sessions


def role(aws: MotoServer, name: str) -> str:
    """A role allowed to describe instances and itself."""
    iam = aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    allow = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "sts:GetCallerIdentity"],
                "Resource": "*",
            }
        ],
    }
    iam.put_role_policy(RoleName=name, PolicyName="read", PolicyDocument=json.dumps(allow))
    return str(arn)


def scope(role_arn: str, external_id: str | None = None) -> AwsScope:
    return AwsScope((REGION,), "tenant", "t", role_arn=role_arn, external_id=external_id)


@contextmanager
def iam_enforced(aws: MotoServer) -> Iterator[None]:
    def set_auth(after_requests: str) -> None:
        request = urllib.request.Request(
            f"{aws.endpoint}/moto-api/reset-auth",
            data=after_requests.encode(),
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        urllib.request.urlopen(request).close()

    set_auth("0")
    try:
        yield
    finally:
        set_auth("inf")


def test_credentials_due_to_expire_are_renewed_and_calls_keep_succeeding(aws: MotoServer) -> None:
    recorder = Recorder()
    sessions = sessions_for(aws, recorder, duration=900)
    arn = role(aws, "te-renewed")
    ec2 = sessions.client(scope(arn), "ec2", REGION)
    assert len(recorder.assumed_keys) == 1  # assumed when the client is made

    for _ in range(3):
        ec2.describe_instances()

    # each request, inside the renewal window, was signed with freshly assumed credentials
    assert len(recorder.assumed_keys) == 4
    assert len(set(recorder.assumed_keys)) == 4
    assert recorder.signed_keys == recorder.assumed_keys[1:]
    identity = sessions.client(scope(arn), "sts", REGION).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/te-renewed/tenant-enforcer"
    assert recorder.signed_keys[-1] == recorder.assumed_keys[-1]


def test_a_role_is_assumed_once_for_all_regions_and_services_while_valid(aws: MotoServer) -> None:
    recorder = Recorder()
    sessions = sessions_for(aws, recorder)  # AWS's default duration: 1 h, far from renewal
    arn = role(aws, "te-once")
    for region in (REGION, "eu-west-1"):
        sessions.client(scope(arn), "ec2", region).describe_instances()
    sessions.client(scope(arn), "sts", REGION).get_caller_identity()
    sessions.client(scope(arn), "ec2", REGION).describe_instances()

    assert len(recorder.assumed_keys) == 1
    assert recorder.signed_keys == recorder.assumed_keys * 4
    assert "DurationSeconds" not in recorder.assume_params[0]


def test_external_id_and_session_name_are_sent_on_every_assume(aws: MotoServer) -> None:
    recorder = Recorder()
    sessions = sessions_for(aws, recorder, duration=900)
    arn = role(aws, "te-external")
    ec2 = sessions.client(scope(arn, external_id="ext-1"), "ec2", REGION)
    ec2.describe_instances()  # renews
    sessions.client(scope(arn), "ec2", REGION)  # another (role, external id): its own session

    wanted = {"RoleArn": arn, "RoleSessionName": "tenant-enforcer", "DurationSeconds": 900}
    assert recorder.assume_params == [
        {**wanted, "ExternalId": "ext-1"},
        {**wanted, "ExternalId": "ext-1"},
        wanted,
    ]


def test_a_failed_assume_raises_and_is_tried_again_next_time(aws: MotoServer) -> None:
    recorder = Recorder()
    sessions = sessions_for(aws, recorder)
    arn = role(aws, "te-denied")
    with iam_enforced(aws), pytest.raises(ClientError) as failed:
        sessions.client(scope(arn), "ec2", REGION)
    assert failed.value.operation_name == "AssumeRole"
    assert recorder.assumed_keys == []

    sessions.client(scope(arn), "ec2", REGION).describe_instances()  # nothing failed was kept
    assert len(recorder.assumed_keys) == 1
    assert recorder.signed_keys == recorder.assumed_keys


def test_a_failed_early_renewal_keeps_the_valid_credentials(aws: MotoServer) -> None:
    """botocore's advisory window: more than 10 minutes left, a failed renewal is logged and
    the current credentials are used (under 10 minutes it would raise from the call)."""
    recorder = Recorder()
    sessions = sessions_for(aws, recorder, duration=900)
    arn = role(aws, "te-kept")
    ec2 = sessions.client(scope(arn), "ec2", REGION)
    with iam_enforced(aws):
        ec2.describe_instances()  # the renewal is denied (our own keys are no moto user)
    assert len(recorder.assume_params) == 2  # the renewal was tried
    assert len(recorder.assumed_keys) == 1
    assert recorder.signed_keys == recorder.assumed_keys
