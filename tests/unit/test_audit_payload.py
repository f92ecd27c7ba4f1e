"""What one reconcile puts in the audit log (pure): nothing when nothing changed."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from tenant_enforcer.core.ladder import Decision
from tenant_enforcer.core.plan import Action
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import Approval
from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.record.audit import MAX_ITEMS, audit_payload
from tenant_enforcer.record.status import Outcome, Problem


@dataclass(frozen=True)
class Log:
    actor: str = "tenant-enforcer/ops@pod-1"
    prior_namespace: str = "ops"


def decision(target: Level, verdicts: tuple[str, ...] = ("v1",)) -> Decision:
    return Decision(target, target, f"verdicts call for {target.api_name}", verdicts,
                    MappingProxyType({}), None, None, False)  # fmt: skip


NS = ObjectRef("Namespace", "acme-web")
RAISE = Action(NS, Level.NONE, Level.NOTICE)
HELD = {"level": "Notice", "targetLevel": "Notice"}


def test_a_raise_names_verdicts_actions_and_where_prior_state_is() -> None:
    outcome = Outcome(Level.NOTICE, decision(Level.NOTICE), planned=(RAISE,), applied=(RAISE,))
    record = audit_payload("acme", "acme-policy", {}, outcome, [], Log())
    assert record is not None
    assert (record["event"], record["from"], record["to"], record["target"]) == (
        "LevelChanged", "None", "Notice", "Notice",
    )  # fmt: skip
    assert record["verdicts"] == ["v1"] and record["actor"] == "tenant-enforcer/ops@pod-1"
    assert record["actions"] == [
        {"op": "enforce", "ref": "Namespace acme-web", "to": "Notice", "result": "done"}
    ]
    assert record["priorState"] == {"configMap": "ops/prior-state-acme", "keys": ["Namespace._.acme-web"]}
    assert record["dryRun"] is False and "errors" not in record


def test_the_second_run_of_an_idempotent_reconcile_records_nothing() -> None:
    assert audit_payload("acme", "p", HELD, Outcome(Level.NOTICE, decision(Level.NOTICE)), [], Log()) is None


def test_a_lift_and_a_failed_action() -> None:
    lift = Action(NS, Level.NOTICE, Level.NONE)
    done = Outcome(Level.NONE, decision(Level.NONE, ()), planned=(lift,), applied=(lift,))
    record = audit_payload("acme", "p", HELD, done, [], Log())
    assert record and record["event"] == "Lifted" and record["actions"][0]["op"] == "restore"
    assert "priorState" not in record  # a restore changes nothing that needs saving
    failed = Outcome(Level.NOTICE, decision(Level.NONE, ()), planned=(lift,), failures=("timeout",))
    record = audit_payload("acme", "p", HELD, failed, [], Log())
    assert record and record["event"] == "ActionsFailed" and record["errors"] == ["timeout"]
    assert record["actions"][0]["result"] == "notDone"


def test_an_observe_failure_without_actions_or_new_target_records_nothing() -> None:
    outcome = Outcome(Level.NOTICE, decision(Level.NOTICE), problem=Problem("ObserveFailed", "forbidden"))
    assert audit_payload("acme", "p", HELD, outcome, [], Log()) is None


def test_dry_run_records_a_new_target_once_with_what_would_be_done() -> None:
    outcome = Outcome(Level.NONE, decision(Level.NOTICE), planned=(RAISE,), dry_run=True)
    record = audit_payload("acme", "p", {"level": "None", "targetLevel": "None"}, outcome, [], Log())
    assert record and record["event"] == "DryRunPlanned" and record["dryRun"] is True
    assert record["actions"][0]["result"] == "wouldDo" and "priorState" not in record
    again = {"level": "None", "targetLevel": "Notice"}
    assert audit_payload("acme", "p", again, outcome, [], Log()) is None


def test_the_approvals_covering_the_level_are_named() -> None:
    approvals = [
        Approval("ok", "acme", Level.DEPROVISION, frozenset({"v1"}), "legal@example"),
        Approval("too-low", "acme", Level.SCALE_DOWN, frozenset({"v1"}), "legal@example"),
        Approval("other-verdict", "acme", Level.DEPROVISION, frozenset({"v2"}), "legal@example"),
    ]
    outcome = Outcome(Level.DEPROVISION, decision(Level.DEPROVISION))
    record = audit_payload("acme", "p", {}, outcome, approvals, Log())
    assert record and record["approvals"] == [
        {"name": "ok", "approver": "legal@example", "level": "Deprovision"}
    ]


def test_records_stay_bounded() -> None:
    actions = tuple(Action(ObjectRef("Deployment", f"d{i}", "acme-web"), Level.NONE, Level.SCALE_DOWN)
                    for i in range(3 * MAX_ITEMS))  # fmt: skip
    outcome = Outcome(Level.SCALE_DOWN, decision(Level.SCALE_DOWN), planned=actions, applied=actions)
    record = audit_payload("acme", "p", {}, outcome, [], Log())
    assert record and len(record["actions"]) == MAX_ITEMS + 1
    assert record["actions"][-1] == f"… {2 * MAX_ITEMS} more"
    assert len(record["priorState"]["keys"]) == MAX_ITEMS + 1
