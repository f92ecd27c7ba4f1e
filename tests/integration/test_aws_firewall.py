"""Firewall on AWS against moto in server mode: quarantine security group, ALB listeners and
their rules answering 503, S3 public access block and Deny statement.

End to end, the operator (in-process, real kube-apiserver, `aws_endpoint_url` = moto) holds a
tenant's AWS resources at Firewall and gives them back exactly.  The conflict case drives the
firewall targets directly (awsdriver.AwsDriver: real planner, actuator and prior-state store,
own `AwsSessions`), so that nothing re-asserts between the tenant's change and the lift.

moto (5.2.5) behaviours relied on: `modify_network_interface_attribute(Groups=…)` and
`describe_network_interfaces` (the `network-interface-id` and `group-id` filters), security
group create/Duplicate/revoke/delete, ELBv2 `modify_listener` default actions (fixed-response
and back, described as given), `create_rule` / `delete_rule`, `describe_rules` by listener
(paged with Marker/NextMarker, the default rule last with `IsDefault`) and by rule ARN
(`RuleNotFound` for a missing one), `modify_rule` with `Actions` only (conditions and
priority kept; actions described as given, `TargetGroupArn` and `ForwardConfig` forms alike),
S3 policy / public access block / tagging round trips and their
NoSuch* codes.  Not emulated: for an instance launched with `SecurityGroupIds`, moto describes
its interface with the union of the launch groups and the groups set since, so an interface
moved into quarantine still shows its old groups; the instance launched with explicit groups
here sets them on its network interface (`NetworkInterfaces[].Groups`), which moto emulates.
`describe_instances` with the `network-interface.group-id` filter is not implemented (HTTP 500)
and not used.  moto does not validate a rule's actions against its listener's protocol, nor
emulate the traffic itself: that a 503'd rule stops routing is AWS's documented behaviour, only
the configuration is checked here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from awsdriver import REGION, TAG_KEY, AwsDriver
from kubehelpers import OPERATOR_NAMESPACE, AuditLog, Kube, MotoServer, wait_for

from tenant_enforcer.model.levels import Level
from tenant_enforcer.targets.aws.firewall import (
    FIREWALL_SID,
    FIXED_503,
    PAB_ALL_ON,
    BucketTarget,
    LoadBalancerListenerTarget,
    QuarantineGroupTarget,
    QuarantineTarget,
    quarantine_name,
)
from tenant_enforcer.targets.aws.firewall.listeners import LoadBalancerRuleTarget, rule_ref_name
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass

FIREWALL_TARGETS = (
    QuarantineGroupTarget,
    QuarantineTarget,
    LoadBalancerListenerTarget,
    LoadBalancerRuleTarget,
    BucketTarget,
)


# --- the tenant's AWS estate and what we compare -------------------------------------------


@dataclass
class Estate:
    tenant: str
    other: str
    enis: list[str]  # the tenant's
    other_enis: list[str]
    listeners: list[str]
    other_listeners: list[str]
    buckets: list[str]  # [with policy and PAB, with neither]
    other_buckets: list[str]
    vpc: str


def tags(tenant: str, resource: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": [{"Key": TAG_KEY, "Value": tenant}]}]


def bucket_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "theirs",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                },
                {
                    "Sid": "NoHttp",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        },
        indent=2,
    )


def load_balancer(aws: MotoServer, tenant: str, name: str, vpc: str, subnets: list[str]) -> list[str]:
    """An ALB tagged for `tenant` with a forward listener (three rules, see `listener_rules`)
    and a redirect listener (no rule of its own)."""
    elb = aws.client("elbv2", REGION)
    lb = elb.create_load_balancer(Name=name, Subnets=subnets[:2], Tags=[{"Key": TAG_KEY, "Value": tenant}])
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elb.create_target_group(Name=f"{name}-tg", Protocol="HTTP", Port=80, VpcId=vpc)
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    api = elb.create_target_group(Name=f"{name}-api", Protocol="HTTP", Port=8000, VpcId=vpc)
    api_arn = api["TargetGroups"][0]["TargetGroupArn"]
    forward = elb.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    redirect = elb.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=8080,
        DefaultActions=[
            {
                "Type": "redirect",
                "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
            }
        ],
    )
    forward_arn = forward["Listeners"][0]["ListenerArn"]
    listener_rules(elb, forward_arn, tg_arn, api_arn)
    return [forward_arn, redirect["Listeners"][0]["ListenerArn"]]


def listener_rules(elb: Any, listener: str, tg_arn: str, api_arn: str) -> None:
    """A path rule (forward by `TargetGroupArn`), a host + path rule (weighted `ForwardConfig`)
    and a header rule (fixed 200), at priorities 10, 20, 30."""
    weighted = {
        "TargetGroups": [{"TargetGroupArn": api_arn, "Weight": 3}, {"TargetGroupArn": tg_arn, "Weight": 1}],
        "TargetGroupStickinessConfig": {"Enabled": False},
    }
    for priority, conditions, actions in [
        (
            10,
            [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
            [{"Type": "forward", "TargetGroupArn": api_arn}],
        ),
        (
            20,
            [
                {"Field": "host-header", "HostHeaderConfig": {"Values": ["admin.example.com"]}},
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/console/*"]}},
            ],
            [{"Type": "forward", "ForwardConfig": weighted}],
        ),
        (
            30,
            [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Probe", "Values": ["1"]}}],
            [
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {"StatusCode": "200", "ContentType": "text/plain"},
                }
            ],
        ),
    ]:
        elb.create_rule(ListenerArn=listener, Priority=priority, Conditions=conditions, Actions=actions)


def estate(aws: MotoServer, tenant: str, other: str) -> Estate:
    ec2, s3 = aws.client("ec2", REGION), aws.client("s3", REGION)
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    subnets = sorted(
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    )
    image = ec2.describe_images()["Images"][0]["ImageId"]
    web = ec2.create_security_group(GroupName=f"{tenant}-web", Description="web", VpcId=vpc)["GroupId"]
    admin = ec2.create_security_group(GroupName=f"{tenant}-admin", Description="ssh", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )

    def launch(owner: str, **kwargs: Any) -> str:
        run = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tags(owner, "instance"), **kwargs
        )
        return str(run["Instances"][0]["NetworkInterfaces"][0]["NetworkInterfaceId"])

    enis = [
        launch(tenant, SubnetId=subnets[0]),  # the VPC's default group
        # Explicit groups, set on the interface (see the module docstring for SecurityGroupIds).
        launch(
            tenant, NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnets[1], "Groups": [web, admin]}]
        ),
    ]
    other_enis = [
        launch(other, NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnets[0], "Groups": [web]}])
    ]

    listeners = load_balancer(aws, tenant, f"lb-{tenant}"[:32], vpc, subnets)
    other_listeners = load_balancer(aws, other, f"lb-{other}"[:32], vpc, subnets)

    buckets = [f"{tenant}-data", f"{tenant}-bare"]
    other_buckets = [f"{other}-data"]
    for bucket, owner in [(buckets[0], tenant), (buckets[1], tenant), (other_buckets[0], other)]:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": TAG_KEY, "Value": owner}]})
    for bucket in (buckets[0], other_buckets[0]):
        s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy(bucket))
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": False,
                "RestrictPublicBuckets": False,
            },
        )
    return Estate(tenant, other, enis, other_enis, listeners, other_listeners, buckets, other_buckets, vpc)


def eni_groups(aws: MotoServer, eni: str) -> list[str]:
    described = aws.client("ec2", REGION).describe_network_interfaces(NetworkInterfaceIds=[eni])
    return [g["GroupId"] for g in described["NetworkInterfaces"][0]["Groups"]]


def default_actions(aws: MotoServer, listener: str) -> list[dict[str, Any]]:
    described = aws.client("elbv2", REGION).describe_listeners(ListenerArns=[listener])
    return list(described["Listeners"][0]["DefaultActions"])


def rules(aws: MotoServer, listener: str) -> dict[str, dict[str, Any]]:
    """The listener's non-default rules by ARN, every field as described."""
    pages = aws.client("elbv2", REGION).get_paginator("describe_rules").paginate(ListenerArn=listener)
    return {r["RuleArn"]: r for page in pages for r in page["Rules"] if not r["IsDefault"]}


def bucket_state(aws: MotoServer, bucket: str) -> dict[str, Any]:
    s3 = aws.client("s3", REGION)
    try:
        policy: Any = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy"
        policy = None
    try:
        pab: Any = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
        pab = None
    return {"policy": policy, "publicAccessBlock": pab}


def snapshot(aws: MotoServer, world: Estate) -> dict[str, Any]:
    """Every describe output the firewall may touch, for the tenant and the other tenant."""
    return {
        "enis": {e: eni_groups(aws, e) for e in world.enis + world.other_enis},
        "listeners": {arn: default_actions(aws, arn) for arn in world.listeners + world.other_listeners},
        "rules": {arn: rules(aws, arn) for arn in world.listeners + world.other_listeners},
        "buckets": {b: bucket_state(aws, b) for b in world.buckets + world.other_buckets},
    }


def quarantine_group(aws: MotoServer, tenant: str) -> dict[str, Any] | None:
    groups = aws.client("ec2", REGION).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [quarantine_name(tenant)]}]
    )["SecurityGroups"]
    assert len(groups) <= 1, groups
    return groups[0] if groups else None


def assert_firewalled(aws: MotoServer, world: Estate, before: dict[str, Any]) -> None:
    group = quarantine_group(aws, world.tenant)
    assert group is not None and group["VpcId"] == world.vpc
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []
    for eni in world.enis:
        assert eni_groups(aws, eni) == [group["GroupId"]], eni
    for arn in world.listeners:
        assert default_actions(aws, arn) == [FIXED_503]
        held = rules(aws, arn)
        assert held.keys() == before["rules"][arn].keys()
        for rule_arn, rule in held.items():
            assert rule["Actions"] == [FIXED_503], rule_arn
            was = before["rules"][arn][rule_arn]
            assert {k: v for k, v in rule.items() if k != "Actions"} == {
                k: v for k, v in was.items() if k != "Actions"
            }, f"{rule_arn}: only the actions change"
    assert sum(len(before["rules"][arn]) for arn in world.listeners) == 3
    for bucket in world.buckets:
        state = bucket_state(aws, bucket)
        assert state["publicAccessBlock"] == PAB_ALL_ON
        statements = state["policy"]["Statement"]
        ours = [s for s in statements if s.get("Sid") == FIREWALL_SID]
        assert len(ours) == 1 and ours[0]["Effect"] == "Deny" and ours[0]["Principal"] == "*"
        assert f"arn:aws:s3:::{bucket}/*" in ours[0]["Resource"]
        theirs = [s for s in statements if s.get("Sid") != FIREWALL_SID]
        was = before["buckets"][bucket]["policy"]
        assert theirs == (was["Statement"] if was else [])
        if was:
            assert {k: v for k, v in state["policy"].items() if k != "Statement"} == {
                k: v for k, v in was.items() if k != "Statement"
            }
    now = snapshot(aws, world)
    for key in ("enis", "listeners", "rules", "buckets"):
        for other in world.other_enis + world.other_listeners + world.other_buckets:
            if other in now[key]:
                assert now[key][other] == before[key][other], f"other tenant's {other} changed"


# --- end to end, through the operator -------------------------------------------------------


def level(kube: Kube, tenant: str) -> str | None:
    return kube.status("tenantpolicies", tenant).get("level")


def test_firewall_quarantines_instances_closes_listeners_and_buckets_and_the_lift_restores_them(
    kube: Kube, operator: AuditLog, aws: MotoServer, unique: str
) -> None:
    tenant = f"awsfw-{unique}"
    world = estate(aws, tenant, f"awsfo-{unique}")
    before = snapshot(aws, world)
    kube.ladder(
        f"awsfw-{unique}",
        [{"name": "malware", "categories": ["malware"], "level": "Firewall", "noticePeriod": "0s"}],
    )
    kube.namespace(f"{tenant}-app")  # a policy names namespaces; this one stays empty
    kube.policy(
        tenant,
        tenant,
        f"awsfw-{unique}",
        [f"{tenant}-app"],
        aws={"regions": [REGION], "tagKey": TAG_KEY, "tagValue": tenant},
    )

    kube.verdict(f"v-{unique}", tenant, category="malware", severity="high")
    wait_for("level Firewall", lambda: level(kube, tenant) == "Firewall", timeout=60)
    assert_firewalled(aws, world, before)
    prior = kube.core.read_namespaced_config_map(f"prior-state-{tenant}", OPERATOR_NAMESPACE).data
    for eni in world.enis:
        assert json.loads(prior[f"Ec2NetworkInterface.{REGION}.{eni}"])["state"] == {
            "groups": before["enis"][eni]
        }
    assert json.loads(prior[f"S3Bucket.{REGION}.{world.buckets[1]}"])["state"] == {
        "policy": None,
        "publicAccessBlock": None,
    }
    listener_keys = [k for k in prior if k.startswith(f"ElbListener.{REGION}.")]
    saved_actions = sorted(
        json.dumps(json.loads(prior[k])["state"]["defaultActions"], sort_keys=True) for k in listener_keys
    )
    assert saved_actions == sorted(
        json.dumps(before["listeners"][arn], sort_keys=True) for arn in world.listeners
    )
    for arn in world.listeners:  # each rule's own record: its actions before the 503
        for rule_arn, rule in before["rules"][arn].items():
            record = json.loads(prior[f"ElbListenerRule.{REGION}.{rule_ref_name(rule_arn)}"])
            assert record["state"] == {"actions": rule["Actions"]}

    kube.verdict(f"clear-{unique}", tenant, category="malware", outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: level(kube, tenant) == "None", timeout=60)
    after = snapshot(aws, world)
    for key in ("enis", "listeners", "rules", "buckets"):
        for name, was in before[key].items():
            assert after[key][name] == was, f"{key} {name} not restored exactly"
    assert quarantine_group(aws, tenant) is None, "the quarantine group is deleted once unused"
    assert not [
        c
        for c in kube.core.list_namespaced_config_map(OPERATOR_NAMESPACE).items
        if c.metadata.name == f"prior-state-{tenant}"
    ]


# --- the targets driven directly --------------------------------------------------------------


@pytest.fixture
def driver(kube: Kube, aws: MotoServer, unique: str) -> Iterator[AwsDriver]:
    """The reconcile's observe → plan → act steps for the AWS firewall targets only."""
    made = AwsDriver(kube, aws, f"awsfd-{unique}", None, kinds=FIREWALL_TARGETS)
    yield made
    made.close()


def test_an_interface_changed_while_quarantined_is_reported_and_left_as_it_is(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    world = estate(aws, driver.scope.tenant, f"awsfo-{unique}")
    before = snapshot(aws, world)
    result = driver.reconcile(Level.FIREWALL)
    assert not result.failed, result
    assert_firewalled(aws, world, before)
    # Converged: a second pass plans nothing.
    assert driver.reconcile(Level.FIREWALL).done == []

    # The tenant moves one interface out of quarantine, into a group of its own.
    ec2 = aws.client("ec2", REGION)
    theirs = ec2.create_security_group(GroupName=f"escape-{unique}", Description="x", VpcId=world.vpc)[
        "GroupId"
    ]
    changed, untouched = world.enis
    ec2.modify_network_interface_attribute(NetworkInterfaceId=changed, Groups=[theirs])

    result = driver.reconcile(Level.NONE)
    assert not result.failed, result
    assert len(result.conflicts) == 1 and changed in result.conflicts[0], result.conflicts
    assert eni_groups(aws, changed) == [theirs], "left as the tenant set it"
    assert eni_groups(aws, untouched) == before["enis"][untouched]
    after = snapshot(aws, world)
    assert after["listeners"] == before["listeners"] and after["buckets"] == before["buckets"]
    assert after["rules"] == before["rules"]
    assert quarantine_group(aws, driver.scope.tenant) is None
    assert driver.store.load(driver.scope.tenant) == {}


def test_a_lift_keeps_policy_statements_added_while_enforced_and_removes_only_ours(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    world = estate(aws, driver.scope.tenant, f"awsfo-{unique}")
    before = snapshot(aws, world)
    assert not driver.reconcile(Level.FIREWALL).failed
    s3 = aws.client("s3", REGION)
    bucket = world.buckets[0]
    doc = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    added = {
        "Sid": "Added",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:DeleteBucket",
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    doc["Statement"].append(added)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))

    result = driver.reconcile(Level.NONE)
    assert not result.failed, result
    assert [c for c in result.conflicts if bucket in c], result.conflicts
    policy = bucket_state(aws, bucket)["policy"]
    assert policy["Statement"] == [*before["buckets"][bucket]["policy"]["Statement"], added]
    assert bucket_state(aws, bucket)["publicAccessBlock"] == before["buckets"][bucket]["publicAccessBlock"]
    assert bucket_state(aws, world.buckets[1]) == before["buckets"][world.buckets[1]]


def test_a_firewall_cut_short_is_finished_by_the_next_reconcile(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    """A crash after the prior state was saved and some writes were made: the next pass finds
    the rest saved-but-not-set and finishes it; the lift then restores everything exactly."""
    world = estate(aws, driver.scope.tenant, f"awsfo-{unique}")
    before = snapshot(aws, world)
    assert not driver.reconcile(Level.FIREWALL).failed
    # Undo part of it behind the operator's back, as if those writes had never been made.
    ec2, elb, s3 = aws.client("ec2", REGION), aws.client("elbv2", REGION), aws.client("s3", REGION)
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=world.enis[1], Groups=before["enis"][world.enis[1]]
    )
    elb.modify_listener(
        ListenerArn=world.listeners[0], DefaultActions=before["listeners"][world.listeners[0]]
    )
    rule_arn, rule = next(iter(before["rules"][world.listeners[0]].items()))
    elb.modify_rule(RuleArn=rule_arn, Actions=rule["Actions"])
    s3.delete_public_access_block(Bucket=world.buckets[1])
    result = driver.reconcile(Level.FIREWALL)
    assert not result.failed, result
    assert {a.ref.kind for a in result.done} == {
        "Ec2NetworkInterface",
        "ElbListener",
        "ElbListenerRule",
        "S3Bucket",
    }
    assert_firewalled(aws, world, before)

    assert not driver.reconcile(Level.NONE).failed
    after = snapshot(aws, world)
    assert after == before
    assert quarantine_group(aws, driver.scope.tenant) is None


def test_listener_rules_changed_added_or_deleted_while_held(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    """While held, the tenant's automation puts one rule back, adds a rule, then (after the
    next reconcile) re-points a rule and deletes another: the put-back rule is re-asserted, the
    added one is 503'd with its actions saved in a record of its own; on the lift the
    re-pointed rule is the one conflict (left as the tenant set it), the deleted one is
    skipped, and every other rule, the added one included, gets exactly its actions back."""
    world = estate(aws, driver.scope.tenant, f"awsfo-{unique}")
    before = snapshot(aws, world)
    assert not driver.reconcile(Level.FIREWALL).failed
    assert_firewalled(aws, world, before)
    elb = aws.client("elbv2", REGION)
    listener = world.listeners[0]
    (api, api_rule), (admin, admin_rule), (probe, _) = before["rules"][listener].items()

    elb.modify_rule(RuleArn=admin, Actions=admin_rule["Actions"])  # put back while held
    added_actions = [{"Type": "forward", "TargetGroupArn": api_rule["Actions"][0]["TargetGroupArn"]}]
    added_conditions = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/new/*"]}}]
    added = elb.create_rule(
        ListenerArn=listener, Priority=40, Conditions=added_conditions, Actions=added_actions
    )["Rules"][0]["RuleArn"]

    result = driver.reconcile(Level.FIREWALL)
    assert not result.failed, result
    done = {a.ref.name: a for a in result.done}
    assert done.keys() == {rule_ref_name(admin), rule_ref_name(added)}, result.done
    assert done[rule_ref_name(admin)].reassert and not done[rule_ref_name(added)].reassert
    held = rules(aws, listener)
    assert all(r["Actions"] == [FIXED_503] for r in held.values()), held
    assert held[added]["Priority"] == "40" and held[added]["Conditions"] == added_conditions
    saved = {ref.name: rec.state for ref, rec in driver.store.load(driver.scope.tenant).items()}
    assert saved[rule_ref_name(added)] == {"actions": added_actions}, "recorded before the 503"
    assert saved[rule_ref_name(admin)] == {"actions": admin_rule["Actions"]}, "never overwritten"
    assert driver.reconcile(Level.FIREWALL).done == []

    repointed = [
        {"Type": "redirect", "RedirectConfig": {"Host": "elsewhere.example.com", "StatusCode": "HTTP_302"}}
    ]
    elb.modify_rule(RuleArn=api, Actions=repointed)
    elb.delete_rule(RuleArn=probe)

    result = driver.reconcile(Level.NONE)
    assert not result.failed, result
    assert len(result.conflicts) == 1 and rule_ref_name(api) in result.conflicts[0], result.conflicts
    after = rules(aws, listener)
    assert after.keys() == {api, admin, added}
    assert after[api] == {**api_rule, "Actions": repointed}, "left as the tenant set it"
    assert after[admin] == admin_rule
    assert after[added]["Actions"] == added_actions
    assert after[added]["Conditions"] == added_conditions and after[added]["Priority"] == "40"
    assert default_actions(aws, listener) == before["listeners"][listener]
    other = world.other_listeners[0]
    assert rules(aws, other) == before["rules"][other], "the other tenant's rules are never touched"
    assert driver.store.load(driver.scope.tenant) == {}


def test_the_calls_made_are_the_iam_actions_declared(driver: AwsDriver, aws: MotoServer, unique: str) -> None:
    """Held, a rule added to the quarantine group behind our back (revoked again), lifted:
    every declared action is used, and nothing undeclared is called."""
    world = estate(aws, driver.scope.tenant, f"awsfo-{unique}")
    before = snapshot(aws, world)
    assert not driver.reconcile(Level.FIREWALL).failed
    group = quarantine_group(aws, driver.scope.tenant)
    assert group is not None
    aws.client("ec2", REGION).authorize_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    result = driver.reconcile(Level.FIREWALL)
    assert [a.ref.kind for a in result.done] == ["Ec2QuarantineGroup"] and all(
        a.reassert for a in result.done
    )
    assert_firewalled(aws, world, before)
    assert not driver.reconcile(Level.NONE).failed
    assert snapshot(aws, world) == before

    declared = {action for cls in FIREWALL_TARGETS for action in cls.iam}
    made = set(driver.calls)
    assert made <= declared, f"undeclared calls: {sorted(made - declared)}"
    # Tags given at creation (TagSpecifications) need ec2:CreateTags without calling it.
    assert made == declared - {"ec2:CreateTags"}, f"declared but never called: {sorted(declared - made)}"


def test_a_failing_read_changes_nothing_and_names_the_call(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    """Access denied on one bucket's tags: the whole discovery fails, so nothing is done
    (not even the quarantine group or the listeners, which were read fine)."""
    world = estate(aws, driver.scope.tenant, f"awsfo-{unique}")
    before = snapshot(aws, world)
    driver.refuse("GetBucketTagging", "AccessDenied")
    with pytest.raises(AwsTargetError) as failed:
        driver.reconcile(Level.FIREWALL)
    assert failed.value.code == "AccessDenied" and failed.value.error_class is ErrorClass.FATAL
    assert "s3.get_bucket_tagging" in str(failed.value)
    assert snapshot(aws, world) == before
    assert quarantine_group(aws, driver.scope.tenant) is None
    assert driver.store.load(driver.scope.tenant) == {}
    assert driver.mutating == []
