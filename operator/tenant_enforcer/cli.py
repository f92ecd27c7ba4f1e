"""`tenant-enforcer`: run the operator, try it locally, check files, preview a decision."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml


def _cmd_run(args: argparse.Namespace) -> int:
    from tenant_enforcer.controller.runner import OperatorConfig, run

    run(
        OperatorConfig(
            kubeconfig=args.kubeconfig,
            namespace=args.namespace,
            dry_run=args.dry_run,
            workers=args.workers,
            liveness=args.liveness,
            evidence_dir=args.evidence_dir,
            aws_endpoint_url=args.aws_endpoint_url,
            audit_log=args.audit_log,
            notice_secret=args.notice_secret,
            breaker_limit=args.breaker_limit,
            breaker_window=args.breaker_window,
        )
    )
    return 0


def _duration(text: str) -> timedelta:
    from tenant_enforcer.model.duration import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_dev_cluster(args: argparse.Namespace) -> int:
    from tenant_enforcer.devcluster.build import ensure_binaries

    if args.action == "build":
        print(ensure_binaries(with_kwok=True))
        return 0
    from tenant_enforcer.devcluster.cluster import running_cluster

    with running_cluster(args.dir, full=args.full) as cluster:
        print(
            f"control plane up: {cluster.server}\nexport KUBECONFIG={cluster.kubeconfig}\n"
            f"kubectl: {cluster.kubectl}\nCtrl-C stops it.",
            flush=True,
        )
        try:
            import threading

            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tenant_enforcer.demo import run_demo

    return run_demo(keep=args.keep, workdir=args.dir)


def _load_docs(paths: Sequence[Path]) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    for path in paths:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return docs


def _cmd_validate(args: argparse.Namespace) -> int:
    """A quick offline check with the operator's own parser; the API server has the last word."""
    from tenant_enforcer.model.ladder import Ladder
    from tenant_enforcer.model.policy import Approval, TenantPolicy
    from tenant_enforcer.model.verdict import Verdict

    parsers: dict[str, Callable[[dict[str, object]], object]] = {
        "EnforcementLadder": Ladder.from_resource,
        "TenantPolicy": TenantPolicy.from_resource,
        "ModerationVerdict": Verdict.from_resource,
        "EnforcementApproval": Approval.from_resource,
    }
    bad = 0
    for doc in _load_docs(args.files):
        kind = str(doc.get("kind"))
        meta = doc.get("metadata")
        name = meta.get("name", "?") if isinstance(meta, dict) else "?"
        if kind not in parsers:
            continue
        try:
            parsers[kind](doc)
            print(f"ok       {kind}/{name}")
        except (KeyError, ValueError, TypeError) as exc:
            bad += 1
            print(f"invalid  {kind}/{name}: {exc}")
    return 1 if bad else 0


def _cmd_plan(args: argparse.Namespace) -> int:
    """What the ladder decides for these verdicts (and approvals) at a given time: no cluster needed."""
    from tenant_enforcer.core.ladder import evaluate
    from tenant_enforcer.model.duration import format_time, parse_time
    from tenant_enforcer.model.ladder import Ladder
    from tenant_enforcer.model.policy import Approval
    from tenant_enforcer.model.verdict import Verdict

    docs = _load_docs(args.files)
    ladders = [Ladder.from_resource(d) for d in docs if d.get("kind") == "EnforcementLadder"]
    if len(ladders) != 1:
        print("give exactly one EnforcementLadder among the files", file=sys.stderr)
        return 2
    verdicts = [Verdict.from_resource(d) for d in docs if d.get("kind") == "ModerationVerdict"]
    now = parse_time(args.at) if args.at else datetime.now(UTC)
    approvals = [Approval.from_resource(d) for d in docs if d.get("kind") == "EnforcementApproval"]
    decision = evaluate(ladders[0], verdicts, now, approvals=approvals)
    print(
        yaml.safe_dump(
            {
                "at": format_time(now),
                "targetLevel": decision.target.api_name,
                "reason": decision.reason,
                "activeVerdicts": list(decision.active_verdicts),
                "nextDueAt": format_time(decision.next_due) if decision.next_due else None,
                "awaitingApproval": decision.awaiting_approval.api_name
                if decision.awaiting_approval
                else None,
                "verdicts": {
                    n: {"state": e.state.value, "level": e.level.api_name}
                    for n, e in decision.verdicts.items()
                },
            },
            sort_keys=False,
        ),
        end="",
    )
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    """Check an audit log's hash chain, or print its records."""
    from tenant_enforcer.record.audit import show_lines, verify_report

    if args.action == "verify":
        code, lines = verify_report(args.files)
    else:
        code, lines = show_lines(args.files, args.tenant)
    print("\n".join(lines))
    return code


def _cmd_restore(args: argparse.Namespace) -> int:
    """Create a tenant's objects again from a Deprovision evidence snapshot."""
    from tenant_enforcer.restore import api_client, restore_snapshot
    from tenant_enforcer.state.evidence import open_evidence_store

    store = open_evidence_store(args.evidence_dir, args.aws_endpoint_url)
    api = api_client(args.kubeconfig)
    try:
        report = restore_snapshot(api, store, args.tenant, args.snapshot, dry_run=args.dry_run)
    except KeyError:
        known = ", ".join(store.snapshots(args.tenant)) or "none"
        print(
            f"no snapshot {args.snapshot!r} of tenant {args.tenant!r} in {args.evidence_dir} "
            f"(snapshots there: {known})",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:  # a snapshot that does not match its index
        print(f"cannot restore: {exc}", file=sys.stderr)
        return 2
    finally:
        api.close()
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenant-enforcer", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--kubeconfig", type=Path, help="default: in-cluster service account")
    run.add_argument(
        "--namespace", default="tenant-enforcer", help="the operator's own (protected) namespace"
    )
    run.add_argument("--dry-run", action="store_true", help="plan and record, change nothing")
    run.add_argument("--workers", type=int, default=4, help="concurrent tenant reconciles")
    run.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument(
        "--evidence-dir",
        default="/var/lib/tenant-enforcer/evidence",
        help="where Deprovision writes its evidence snapshots: a directory or s3://bucket/prefix",
    )
    run.add_argument("--aws-endpoint-url", help="AWS API endpoint override (LocalStack, moto); default: AWS")
    run.add_argument(
        "--audit-log",
        type=Path,
        help="the hash-chained audit log (JSON Lines); default: audit.jsonl in --evidence-dir, "
        "or /var/lib/tenant-enforcer/evidence/audit.jsonl when that is s3://",
    )
    run.add_argument(
        "--notice-secret",
        help="Secret in --namespace whose key hmac-key signs webhook notices; unset: webhooks are not called",
    )
    run.add_argument(
        "--breaker-limit",
        type=int,
        default=50,
        help="at most this many disruptive raises per --breaker-window, cluster-wide; 0: off",
    )
    run.add_argument(
        "--breaker-window", type=_duration, default=timedelta(minutes=10), help="e.g. 10m (default)"
    )
    run.set_defaults(func=_cmd_run)

    dev = sub.add_parser("dev-cluster", help="build or start the local control plane")
    dev.add_argument("action", choices=["build", "up"])
    dev.add_argument("--full", action="store_true", help="add controllers, scheduler and KWOK nodes")
    dev.add_argument("--dir", type=Path, help="working directory (default: a new temporary one)")
    dev.set_defaults(func=_cmd_dev_cluster)

    demo = sub.add_parser("demo", help="the worked example on a local control plane")
    demo.add_argument("--keep", action="store_true", help="leave the cluster and operator running")
    demo.add_argument("--dir", type=Path)
    demo.set_defaults(func=_cmd_demo)

    validate = sub.add_parser("validate", help="check ladder/policy/verdict/approval YAML files offline")
    validate.add_argument("files", nargs="+", type=Path)
    validate.set_defaults(func=_cmd_validate)

    plan = sub.add_parser("plan", help="decide the level for a ladder, verdict and approval files, offline")
    plan.add_argument("files", nargs="+", type=Path)
    plan.add_argument("--at", help="RFC 3339 time to decide at (default: now)")
    plan.set_defaults(func=_cmd_plan)
    restore = sub.add_parser("restore", help="create a tenant's objects again from a Deprovision snapshot")
    restore.add_argument("--tenant", required=True)
    restore.add_argument("--snapshot", required=True, help="the snapshot id (status.snapshots, Events)")
    restore.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG or ~/.kube/config")
    restore.add_argument(
        "--evidence-dir",
        default="/var/lib/tenant-enforcer/evidence",
        help="where the operator stores evidence snapshots: a directory or s3://bucket/prefix",
    )
    restore.add_argument("--dry-run", action="store_true", help="server-side dry run: nothing is created")
    restore.add_argument("--aws-endpoint-url", help="for an s3:// evidence location: endpoint override")
    restore.set_defaults(func=_cmd_restore)

    audit = sub.add_parser("audit", help="verify or show the operator's audit log")
    audit.add_argument("action", choices=["verify", "show"])
    audit.add_argument(
        "files", nargs="+", type=Path, help="the log; after a torn one, its segments in order"
    )
    audit.add_argument("--tenant", help="show: only this tenant's records")
    audit.set_defaults(func=_cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every successful handler call at INFO: one line per watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
