"""Files the local control plane is started with: kubeconfigs and the audit policy."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from tenant_enforcer.devcluster.pki import CertPair


def write_kubeconfig(path: Path, server: str, ca: Path, client: CertPair, user: str) -> None:
    """A kubeconfig (mode 0600) for `user`, authenticating with its client certificate."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "local", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
                ],
                "users": [
                    {
                        "name": user,
                        "user": {
                            "client-certificate-data": b64(client.cert),
                            "client-key-data": b64(client.key),
                        },
                    }
                ],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
                "current-context": "local",
            }
        )
    )
    path.chmod(0o600)


def write_audit_policy(directory: Path) -> Path:
    """The API server's audit policy: metadata of every write, nothing else (tests count the
    operator's writes from it)."""
    path = directory / "audit-policy.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived"],
                "rules": [
                    {
                        "level": "Metadata",
                        "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                    },
                    {"level": "None"},
                ],
            }
        )
    )
    return path
