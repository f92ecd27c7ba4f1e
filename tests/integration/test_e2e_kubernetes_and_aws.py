"""One verdict drives a tenant's Kubernetes namespaces and its AWS resources to Firewall and
back: the same ladder, one reconcile, both clouds (real kube-apiserver, moto server)."""

from __future__ import annotations

import json
from typing import Any

from kubehelpers import AuditLog, Kube, MotoServer, wait_for
from kubernetes import client

REGION = "us-east-1"


def _allow_all(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": ns, "labels": {"team": "web"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]},
    }


def test_one_verdict_firewalls_namespaces_and_aws_then_everything_comes_back(
    kube: Kube, operator: AuditLog, aws: MotoServer, unique: str
) -> None:
    tenant, ns = f"e-{unique}", f"e-{unique}-web"
    kube.namespace(ns)
    networking = client.NetworkingV1Api(kube.api)
    networking.create_namespaced_network_policy(ns, _allow_all(ns))

    ec2, s3 = aws.client("ec2", REGION), aws.client("s3", REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    tag_spec = [{"ResourceType": "instance", "Tags": [{"Key": "tenant", "Value": tenant}]}]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tag_spec)[
        "Instances"
    ][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    bucket = f"b-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "tenant", "Value": tenant}]})

    def eni_groups() -> list[str]:
        desc = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
        return sorted(g["GroupId"] for g in desc["Groups"])

    def public_access_block() -> dict[str, Any] | None:
        try:
            return dict(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"])
        except s3.exceptions.ClientError:
            return None

    def tenant_policies() -> list[str]:
        return sorted(p.metadata.name for p in networking.list_namespaced_network_policy(ns).items)

    groups_before = eni_groups()
    assert public_access_block() is None
    kube.ladder(
        f"l-{unique}",
        [{"name": "incitement", "categories": ["incitement"], "level": "Firewall", "noticePeriod": "0s"}],
    )
    kube.policy(
        tenant, tenant, f"l-{unique}", [ns], aws={"regions": [REGION], "tagKey": "tenant", "tagValue": tenant}
    )
    wait_for("initial status", lambda: kube.status("tenantpolicies", tenant).get("targetLevel") == "None")

    kube.verdict(f"v-{unique}", tenant, category="incitement", severity="high")
    wait_for(
        "level Firewall", lambda: kube.status("tenantpolicies", tenant).get("level") == "Firewall", timeout=60
    )
    # Kubernetes: our deny-all only; the tenant's policy set aside.
    assert tenant_policies() == ["tenant-enforcer-firewall"]
    # AWS: the instance's interface in the tenant's quarantine group, the bucket blocked.
    quarantine = ec2.describe_security_groups(GroupIds=eni_groups())["SecurityGroups"]
    assert [g["GroupName"] for g in quarantine] == [f"tenant-enforcer-quarantine-{tenant}"]
    assert public_access_block() == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert any(st.get("Sid") == "TenantEnforcerFirewall" for st in policy["Statement"])

    kube.verdict(f"c-{unique}", tenant, category="incitement", outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: kube.status("tenantpolicies", tenant).get("level") == "None", timeout=60)
    assert tenant_policies() == ["allow-all"]
    restored = networking.read_namespaced_network_policy("allow-all", ns)
    assert restored.metadata.labels == {"team": "web"}
    assert eni_groups() == groups_before
    assert public_access_block() is None
    try:
        s3.get_bucket_policy(Bucket=bucket)
        raise AssertionError("the bucket had no policy before: it must have none after")
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy"
