"""The audit log: written by the in-process operator, checked by `tenant-enforcer audit verify`.

The writer's restart, crash and concurrency behaviour is tested on real files.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubehelpers import AuditLog as ApiServerAudit
from kubehelpers import Kube, wait_for

from tenant_enforcer.cli import main
from tenant_enforcer.controller.runner import OperatorConfig, audit_log_path
from tenant_enforcer.devcluster.helm import helm_template
from tenant_enforcer.record.audit import AuditLog, AuditLogError
from tenant_enforcer.record.chain import SEGMENT_STARTED, verify, verify_files

CHART = Path(__file__).resolve().parents[2] / "charts" / "tenant-enforcer"
NOTICE_RULE = [{"name": "spam", "categories": ["spam"], "level": "Notice"}]


def _intact_copy(path: Path, copy: Path) -> list[dict[str, Any]]:
    """The log as of now, up to its last complete line (the operator may be mid-append)."""
    data = path.read_bytes()
    copy.write_bytes(data[: data.rfind(b"\n") + 1])
    return [json.loads(x) for x in copy.read_text().splitlines()]


def _records(path: Path, tenant: str, tmp_path: Path) -> list[dict[str, Any]]:
    return [r for r in _intact_copy(path, tmp_path / "peek.jsonl") if r.get("tenant") == tenant]


def _setup(kube: Kube, unique: str, **ladder: Any) -> tuple[str, list[str]]:
    tenant = f"audit-{unique}"
    namespaces = [f"{tenant}-web"]
    kube.namespace(namespaces[0])
    kube.ladder(f"ladder-{unique}", NOTICE_RULE, **ladder)
    kube.policy(tenant, tenant, f"ladder-{unique}", namespaces)
    wait_for("initial status", lambda: kube.status("tenantpolicies", tenant).get("targetLevel") == "None")
    return tenant, namespaces


def test_transitions_are_logged_with_their_verdicts_and_the_chain_verifies(
    kube: Kube, operator: ApiServerAudit, unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert operator.evidence_dir is not None
    log = Path(operator.evidence_dir) / "audit.jsonl"
    tenant, [ns] = _setup(kube, unique)
    kube.verdict(f"v-{unique}", tenant)
    wait_for("level Notice", lambda: kube.status("tenantpolicies", tenant).get("level") == "Notice")
    kube.verdict(f"clear-{unique}", tenant, outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: kube.status("tenantpolicies", tenant).get("level") == "None")
    # One more reconcile that changes nothing: a verdict no rule matches.  It writes no record.
    kube.verdict(f"other-{unique}", tenant, category="other")
    wait_for(
        "the other verdict seen", lambda: kube.status("moderationverdicts", f"other-{unique}").get("state")
    )

    records = _records(log, tenant, tmp_path)
    assert [(r["event"], r["from"], r["to"]) for r in records] == [
        ("LevelChanged", "None", "Notice"),
        ("Lifted", "Notice", "None"),
    ], records
    raised, lifted = records
    assert raised["verdicts"] == [f"v-{unique}"] and raised["target"] == "Notice"
    assert raised["policy"] == tenant and raised["dryRun"] is False
    assert raised["actor"].startswith("tenant-enforcer/")
    assert {"op": "enforce", "ref": f"Namespace {ns}", "to": "Notice", "result": "done"} in [
        {k: a[k] for k in ("op", "ref", "to", "result")} for a in raised["actions"]
    ], raised["actions"]
    assert raised["priorState"]["configMap"].endswith(f"/prior-state-{tenant}")
    assert lifted["verdicts"] == [] and lifted["reason"]
    assert all(a["op"] == "restore" and a["result"] == "done" for a in lifted["actions"]), lifted
    assert lifted["seq"] > raised["seq"]

    copy = tmp_path / "audit.jsonl"
    everything = _intact_copy(log, copy)
    assert main(["audit", "verify", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"intact, {len(everything)} records" in out and everything[-1]["hash"] in out

    assert main(["audit", "show", str(copy), "--tenant", tenant]) == 0
    shown = capsys.readouterr().out
    assert f"v-{unique}" in shown and "Lifted" in shown

    lines = copy.read_text().splitlines(keepends=True)
    index = next(i for i, x in enumerate(lines) if json.loads(x)["hash"] == raised["hash"])
    lines[index] = lines[index].replace('"to":"Notice"', '"to":"None"', 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(lines))
    assert main(["audit", "verify", str(tampered)]) == 1
    assert f"line {index + 1}: record edited" in capsys.readouterr().out


def test_a_dry_run_ladder_logs_what_would_be_done_once(
    kube: Kube, operator: ApiServerAudit, unique: str, tmp_path: Path
) -> None:
    assert operator.evidence_dir is not None
    log = Path(operator.evidence_dir) / "audit.jsonl"
    tenant, [ns] = _setup(kube, unique, mode="DryRun")
    kube.verdict(f"v-{unique}", tenant)
    wait_for("target Notice", lambda: kube.status("tenantpolicies", tenant).get("targetLevel") == "Notice")
    kube.verdict(f"other-{unique}", tenant, category="other")  # another reconcile: no new record
    wait_for(
        "the other verdict seen", lambda: kube.status("moderationverdicts", f"other-{unique}").get("state")
    )
    [record] = _records(log, tenant, tmp_path)
    assert record["event"] == "DryRunPlanned" and record["dryRun"] is True
    assert (record["from"], record["to"], record["target"]) == ("None", "None", "Notice")
    assert [(a["ref"], a["result"]) for a in record["actions"]] == [(f"Namespace {ns}", "wouldDo")]
    assert "priorState" not in record


def test_the_writer_carries_the_chain_on_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "a" / "audit.jsonl"
    first = AuditLog(path, "me", "ops")
    first.append({"tenant": "t", "event": "LevelChanged"})
    first.append({"tenant": "t", "event": "Lifted"})
    first.close()
    second = AuditLog(path, "me", "ops")
    second.append({"tenant": "t", "event": "LevelChanged"})
    second.close()
    result = verify(path.read_text())
    assert result.ok and result.count == 3 and result.last_seq == 2


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, "me", "ops")

    def write(n: int) -> None:
        for i in range(25):
            log.append({"tenant": f"t{n}", "event": "ActionsApplied", "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    result = verify(path.read_text())
    assert result.ok, result.problem
    assert result.count == 200


def test_a_torn_last_line_starts_a_new_segment_linked_to_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, "me", "ops")
    log.append({"tenant": "t", "event": "LevelChanged"})
    log.close()
    intact = verify(path.read_text())
    with path.open("a") as f:
        f.write('{"tenant":"t","event":"Lif')  # a crash in the middle of a write
    log = AuditLog(path, "me", "ops")
    log.append({"tenant": "t", "event": "Lifted"})
    log.close()
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("audit.jsonl.torn-")]
    assert verify(aside.read_text()).torn
    start = json.loads(path.read_text().splitlines()[0])
    assert start["event"] == SEGMENT_STARTED and start["previousSegment"]["file"] == aside.name
    assert start["prev"] == intact.last_hash and start["seq"] == 1
    name, both = verify_files([(aside.name, aside.read_text()), (path.name, path.read_text())])
    assert both.ok and name == path.name and both.last_seq == 2
    assert main(["audit", "verify", str(aside), str(path)]) == 0
    assert main(["audit", "verify", str(path), str(aside)]) == 1


def test_a_log_whose_last_record_was_edited_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, "me", "ops")
    log.append({"tenant": "t", "event": "LevelChanged", "to": "Notice"})
    log.close()
    path.write_text(path.read_text().replace('"to":"Notice"', '"to":"None"'))
    with pytest.raises(AuditLogError, match="line 1 fails its hash"):
        AuditLog(path, "me", "ops")


def test_the_chart_keeps_the_default_audit_log_on_the_evidence_volume() -> None:
    docs = [d for d in yaml.safe_load_all(helm_template(CHART, "te", "te-system", {})) if d]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--audit-log" not in container["command"]  # the default is used
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "evidence"]
    assert audit_log_path(OperatorConfig()).parent == Path(mount["mountPath"])
    assert audit_log_path(OperatorConfig(evidence_dir="s3://bucket/x")).parent == Path(mount["mountPath"])
    assert audit_log_path(OperatorConfig(evidence_dir="/e", audit_log=Path("/a/l.jsonl"))) == Path(
        "/a/l.jsonl"
    )
