"""Benchmark: hold a tenant's AWS estate at ScaleDown, then Firewall, and lift it again.

Starts moto in server mode in-process (fake credentials), builds a tenant estate in us-east-1
tagged tenant=<tenant> (standalone EC2 instances, Auto Scaling groups of 2 instances, S3
buckets with a bucket policy, ALBs with one listener each), then its own control plane
(etcd + kube-apiserver) and the operator in-process with `aws_endpoint_url` = moto.  One
ladder: a `fraud` verdict calls for ScaleDown, an `incitement` verdict for Firewall (notice
period 0s, no approval).  Phases: a fraud verdict until status.level is ScaleDown; then an
incitement verdict until Firewall; then a cleared verdict superseding both until None.

Per phase it prints and writes (benchmarks/results/aws_estate.json) the wall time, the
operator's AWS calls by operation, its Kubernetes API writes by verb/resource (from the API
server's audit log), and at the end the process's peak RSS; before and after the lift it
describes the whole estate and reports whether the lift restored it exactly.  Figures, never
assertions: machines are noisy.

AWS calls are counted by botocore `before-call` handlers (once per API operation, retries not
counted separately) on the operator's own `AwsSessions`: the runner's `AwsSessions` name is
replaced, in this process only, by a subclass registering the counter on every client it
makes.  The benchmark's own clients (building and describing the estate) are not counted.

Peak RSS is the whole process: operator, moto server (and its in-memory estate) and the
benchmark's clients; `peak_rss_before_operator_mb` is the peak once moto holds the estate,
before the control plane and operator start (etcd and kube-apiserver are child processes,
not counted).

    .venv/bin/python benchmarks/aws_estate.py [--instances 100] [--groups 10] [--buckets 20]
                                              [--load-balancers 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from common import GROUP, RESULTS, VERSION, api_writes, create_custom, wait_until
from kubernetes import client, config
from moto.server import ThreadedMotoServer

from tenant_enforcer.controller import runner
from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster
from tenant_enforcer.model.duration import format_time
from tenant_enforcer.targets.aws.base import ENFORCED_TAG
from tenant_enforcer.targets.aws.firewall import FIREWALL_SID, FIXED_503, quarantine_name
from tenant_enforcer.targets.aws.session import AwsSessions, AwsSettings

USER = "tenant-enforcer-bench"
REGION = "us-east-1"
TAG_KEY = "tenant"


# --- counting the operator's AWS calls ------------------------------------------------------


class AwsCalls:
    """Operations made by the operator's AWS clients, as `<signing name>:<Operation>`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, model: Any, **_: Any) -> None:
        with self._lock:
            self._counts[f"{model.service_model.signing_name}:{model.name}"] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


CALLS = AwsCalls()


class CountingAwsSessions(AwsSessions):
    def __init__(
        self, settings: AwsSettings | None = None, base: boto3.session.Session | None = None
    ) -> None:
        super().__init__(settings, base)
        self.hooks.append(("before-call", CALLS.record))


# --- helpers --------------------------------------------------------------------------------


def _tags(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


class Aws:
    """The benchmark's own clients against moto (never counted as the operator's calls)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        conf = Config(retries={"max_attempts": 10, "mode": "standard"})
        self.ec2: Any = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint, config=conf)
        self.asg: Any = boto3.client("autoscaling", region_name=REGION, endpoint_url=endpoint, config=conf)
        self.s3: Any = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, config=conf)
        self.elb: Any = boto3.client("elbv2", region_name=REGION, endpoint_url=endpoint, config=conf)


# --- the estate -----------------------------------------------------------------------------


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
                }
            ],
        }
    )


def build_estate(aws: Aws, tenant: str, instances: int, groups: int, buckets: int, lbs: int) -> None:
    """Standalone instances (every 10th stopped), groups of 2 (Min 1, Max 4, AZRebalance
    suspended), buckets with a policy, ALBs with a forward listener: all tagged for `tenant`."""
    ec2 = aws.ec2
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    subnets = sorted(
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    )
    image = ec2.describe_images()["Images"][0]["ImageId"]
    tag_spec = [{"ResourceType": "instance", "Tags": [{"Key": TAG_KEY, "Value": tenant}]}]
    launched: list[str] = []
    while len(launched) < instances:
        n = min(50, instances - len(launched))
        run_ = ec2.run_instances(
            ImageId=image,
            MinCount=n,
            MaxCount=n,
            InstanceType="t3.micro",
            SubnetId=subnets[len(launched) // 50 % len(subnets)],
            TagSpecifications=tag_spec,
        )
        launched += [i["InstanceId"] for i in run_["Instances"]]
    stopped = launched[::10]
    if stopped:
        ec2.stop_instances(InstanceIds=stopped)

    for g in range(groups):
        name = f"{tenant}-g{g}"
        aws.asg.create_launch_configuration(
            LaunchConfigurationName=name, ImageId=image, InstanceType="t3.micro"
        )
        aws.asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName=name,
            MinSize=1,
            MaxSize=4,
            DesiredCapacity=2,
            AvailabilityZones=[f"{REGION}a"],
            Tags=[{"Key": TAG_KEY, "Value": tenant, "PropagateAtLaunch": True}],
        )
        aws.asg.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=["AZRebalance"])

    for b in range(buckets):
        bucket = f"{tenant}-b{b}"
        aws.s3.create_bucket(Bucket=bucket)
        aws.s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": TAG_KEY, "Value": tenant}]})
        aws.s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy(bucket))

    for i in range(lbs):
        name = f"{tenant}-lb{i}"
        lb = aws.elb.create_load_balancer(
            Name=name, Subnets=subnets[:2], Tags=[{"Key": TAG_KEY, "Value": tenant}]
        )
        tg = aws.elb.create_target_group(Name=f"{name}-tg", Protocol="HTTP", Port=80, VpcId=vpc)
        aws.elb.create_listener(
            LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroups"][0]["TargetGroupArn"]}],
        )


def describe(aws: Aws) -> dict[str, Any]:
    """Everything the operator may touch, field by field (moto holds this tenant only)."""
    ec2 = aws.ec2
    instances = {
        i["InstanceId"]: {"State": i["State"]["Name"], "Tags": _tags(i.get("Tags"))}
        for page in ec2.get_paginator("describe_instances").paginate()
        for r in page["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    }
    groups = {
        g["AutoScalingGroupName"]: {
            "MinSize": g["MinSize"],
            "MaxSize": g["MaxSize"],
            "DesiredCapacity": g["DesiredCapacity"],
            "SuspendedProcesses": sorted(p["ProcessName"] for p in g["SuspendedProcesses"]),
            "Tags": sorted((t["Key"], t["Value"], t["PropagateAtLaunch"]) for t in g["Tags"]),
            "Members": {i["InstanceId"]: i["LifecycleState"] for i in g["Instances"]},
        }
        for page in aws.asg.get_paginator("describe_auto_scaling_groups").paginate()
        for g in page["AutoScalingGroups"]
    }
    enis = {
        n["NetworkInterfaceId"]: sorted(g["GroupName"] for g in n["Groups"])
        for page in ec2.get_paginator("describe_network_interfaces").paginate()
        for n in page["NetworkInterfaces"]
    }
    security_groups = sorted(
        g["GroupName"]
        for page in ec2.get_paginator("describe_security_groups").paginate()
        for g in page["SecurityGroups"]
    )
    buckets: dict[str, Any] = {}
    for b in aws.s3.list_buckets()["Buckets"]:
        name = b["Name"]
        try:
            policy: Any = json.loads(aws.s3.get_bucket_policy(Bucket=name)["Policy"])
        except aws.s3.exceptions.ClientError:
            policy = None
        try:
            pab: Any = aws.s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        except aws.s3.exceptions.ClientError:
            pab = None
        tags = _tags(aws.s3.get_bucket_tagging(Bucket=name)["TagSet"])
        buckets[name] = {"policy": policy, "publicAccessBlock": pab, "tags": tags}
    listeners = {
        listener["ListenerArn"]: listener["DefaultActions"]
        for lb in aws.elb.describe_load_balancers()["LoadBalancers"]
        for listener in aws.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    }
    return {
        "instances": instances,
        "groups": groups,
        "enis": enis,
        "security_groups": security_groups,
        "buckets": buckets,
        "listeners": listeners,
    }


def summary(world: dict[str, Any], tenant: str) -> dict[str, int]:
    """What the estate looks like, in counts: a figure per phase, not a check."""
    instances, quarantine = world["instances"].values(), quarantine_name(tenant)
    return {
        "instances_running": sum(i["State"] == "running" for i in instances),
        "instances_stopped": sum(i["State"] == "stopped" for i in instances),
        "instances_tagged_enforced": sum(ENFORCED_TAG in i["Tags"] for i in instances),
        "group_desired_total": sum(g["DesiredCapacity"] for g in world["groups"].values()),
        "group_members_standby": sum(
            s == "Standby" for g in world["groups"].values() for s in g["Members"].values()
        ),
        "enis_quarantined": sum(groups == [quarantine] for groups in world["enis"].values()),
        "listeners_fixed_503": sum(actions == [FIXED_503] for actions in world["listeners"].values()),
        "buckets_with_firewall_deny": sum(
            any(s.get("Sid") == FIREWALL_SID for s in (b["policy"] or {}).get("Statement", []))
            for b in world["buckets"].values()
        ),
        "buckets_with_public_access_block": sum(
            b["publicAccessBlock"] is not None for b in world["buckets"].values()
        ),
    }


# --- the run --------------------------------------------------------------------------------


def bench(cluster: LocalCluster, aws: Aws, before: dict[str, Any], tenant: str) -> dict[str, Any]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": f"{tenant}-app"}})  # stays empty
    create_custom(
        api,
        "enforcementladders",
        {
            "metadata": {"name": tenant},
            "spec": {
                "rules": [
                    {"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "0s"},
                    {
                        "name": "incitement",
                        "categories": ["incitement"],
                        "level": "Firewall",
                        "noticePeriod": "0s",
                    },
                ],
                "approvalRequired": [],
            },
        },
    )
    create_custom(
        api,
        "tenantpolicies",
        {
            "metadata": {"name": tenant},
            "spec": {
                "tenant": tenant,
                "ladder": tenant,
                "namespaces": {"names": [f"{tenant}-app"]},
                "aws": {"regions": [REGION], "tagKey": TAG_KEY, "tagValue": tenant},
            },
        },
    )

    def level() -> str | None:
        obj: Any = client.CustomObjectsApi(api).get_cluster_custom_object(
            GROUP, VERSION, "tenantpolicies", tenant
        )
        return (obj.get("status") or {}).get("level")

    def at(want: str) -> Callable[[], bool]:
        return lambda: level() == want

    wait_until(at("None"), 120)
    last_issued = datetime.now(timezone.utc) - timedelta(seconds=2)

    def verdict(name: str, category: str, **spec: Any) -> None:
        nonlocal last_issued
        last_issued = max(
            datetime.now(timezone.utc) - timedelta(seconds=1), last_issued + timedelta(seconds=1)
        )
        create_custom(
            api,
            "moderationverdicts",
            {
                "metadata": {"name": name},
                "spec": {
                    "tenant": tenant,
                    "category": category,
                    "severity": "high",
                    "issuer": "bench",
                    "issuedAt": format_time(last_issued),
                    **spec,
                },
            },
        )

    phases: dict[str, Any] = {}
    mark, _ = api_writes(cluster, 0, USER)
    steps: list[tuple[str, str, str, dict[str, Any]]] = [
        ("scale_down", "ScaleDown", "fraud", {}),
        ("firewall", "Firewall", "incitement", {}),
        (
            "lift",
            "None",
            "fraud",
            {"outcome": "cleared", "supersedes": [f"{tenant}-scale-down", f"{tenant}-firewall"]},
        ),
    ]
    worlds: dict[str, dict[str, Any]] = {}
    for phase, want, category, spec in steps:
        calls_before = CALLS.snapshot()
        verdict(f"{tenant}-{phase.replace('_', '-')}", category, **spec)
        seconds = wait_until(at(want))
        calls = CALLS.snapshot() - calls_before
        mark, writes = api_writes(cluster, mark, USER)
        worlds[phase] = describe(aws)
        phases[phase] = {
            "seconds": round(seconds, 2),
            "aws_calls_total": sum(calls.values()),
            "aws_calls": dict(sorted(calls.items())),
            "kube_writes_total": sum(writes.values()),
            "kube_writes": dict(sorted(writes.items())),
            "estate_after": summary(worlds[phase], tenant),
        }
    after = worlds["lift"]
    restored = {key: after[key] == before[key] for key in before}
    return {
        "phases": phases,
        "estate_before": summary(before, tenant),
        "restored_exactly": all(restored.values()),
        "restored_by_part": restored,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100, help="standalone EC2 instances")
    parser.add_argument("--groups", type=int, default=10, help="Auto Scaling groups of 2 instances")
    parser.add_argument("--buckets", type=int, default=20, help="S3 buckets, each with a bucket policy")
    parser.add_argument("--load-balancers", type=int, default=5, help="ALBs, each with one listener")
    args = parser.parse_args()
    tenant = "bench"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server: no line per request
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    aws = Aws(endpoint)
    started = time.monotonic()
    build_estate(aws, tenant, args.instances, args.groups, args.buckets, args.load_balancers)
    before = describe(aws)
    build_s = time.monotonic() - started
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The operator's clients, counted: the runner builds its sessions from this name.
    runner.AwsSessions = CountingAwsSessions  # type: ignore[attr-defined]
    try:
        with running_cluster() as cluster:
            cluster.install_crds(Path(__file__).resolve().parent.parent / "crds")
            stop, ready = threading.Event(), threading.Event()
            conf = OperatorConfig(
                kubeconfig=cluster.kubeconfig_for(USER),
                namespace="tenant-enforcer-system",
                evidence_dir=cluster.directory / "evidence",
                aws_endpoint_url=endpoint,
            )
            thread = threading.Thread(
                target=run, args=(conf,), kwargs={"stop": stop, "ready": ready}, daemon=True
            )
            thread.start()
            ready.wait(60)
            try:
                measured = bench(cluster, aws, before, tenant)
            finally:
                stop.set()
                thread.join(30)
    finally:
        moto.stop()
    result: dict[str, Any] = {
        "instances": args.instances,
        "groups": args.groups,
        "group_instances": 2 * args.groups,
        "buckets": args.buckets,
        "load_balancers": args.load_balancers,
        "estate_build_seconds": round(build_s, 2),
        **measured,
        "peak_rss_before_operator_mb": round(rss_before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "aws_calls_counted": "botocore before-call on the operator's AwsSessions (operations, not retries)",
        "measured_at": format_time(datetime.now(timezone.utc)),
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "aws_estate.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
