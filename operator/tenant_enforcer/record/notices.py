"""Record: tell the tenant's contacts (webhook, SNS) when its level or target level changes.

Exactly once per transition, through the TenantPolicy's status:
- `lastNotice {id, sentAt, channels, skipped, level, targetLevel, dryRun}`: the state the
  tenant was last told about.  A notice is due when the tenant's (level, target level)
  differs from it; after a restart the status says what was sent, so nothing is re-sent.
- `pendingNotice {id, level, targetLevel, since, attempts, nextAttemptAt, error, channels}`:
  a notice not yet delivered on every channel.  It is retried with backoff on later
  reconciles (the reconcile is scheduled for `nextAttemptAt`), only on the channels that
  failed, with the same id.  A newer state replaces it: the tenant is told the current state.
A failure is an Event NoticeFailed plus pendingNotice; it never stops or delays enforcement
(notices are sent in the record step, after the actions ran).  If the process dies between
a send and the status write, the notice is sent again with the same id: receivers
de-duplicate on `id` (also in the X-Tenant-Enforcer-Notice-Id header).

Webhook: POST of the JSON document, signed as core/notice.py describes, with the key
`hmac-key` of the Secret named by `--notice-secret` in the operator's namespace (read at each
send, so a rotated key applies at once).  Without --notice-secret the webhook is not called
and lastNotice.skipped says so.  SNS: `Publish` of the same JSON with a subject, in the
topic's region, with the tenant's AWS credentials: its role (spec.aws.roleArn) when it has
one, the operator's own otherwise.
"""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubernetes import client

from tenant_enforcer.core import notice as n
from tenant_enforcer.core.ladder import Decision
from tenant_enforcer.model.duration import format_time, parse_time
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope, Contacts
from tenant_enforcer.targets.aws.session import AwsSessions

SECRET_KEY = "hmac-key"
WEBHOOK_TIMEOUT = 10.0  # seconds, connect and read
DEFAULT_RETRY_BASE = timedelta(seconds=10)
USER_AGENT = "tenant-enforcer-notices/1"

NOTICE_SENT = "NoticeSent"
NOTICE_FAILED = "NoticeFailed"
NOTICE_SKIPPED = "NoticeSkipped"
NOTICE_DRY_RUN = "NoticeDryRun"


@dataclass(frozen=True)
class NoticeSubject:
    """One tenant's side of a notice: who to tell, with which AWS scope, about what."""

    context: n.NoticeContext
    contacts: Contacts
    aws: AwsScope | None = None


@dataclass
class NoticeStep:
    """What one reconcile's notice step produced: status fields, Events, a retry time."""

    fields: dict[str, Any]
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (reason, message, warning)
    due: datetime | None = None


class NoticeError(Exception):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: following one would turn the POST into a GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Notifier:
    def __init__(
        self,
        api: Any,
        namespace: str,
        secret: str | None,
        aws: AwsSessions | None,
        retry_base: timedelta = DEFAULT_RETRY_BASE,
        timeout: float = WEBHOOK_TIMEOUT,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self.namespace, self.secret, self.aws = namespace, secret, aws
        self.retry_base, self.timeout = retry_base, timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def step(
        self,
        previous: Mapping[str, Any],
        subject: NoticeSubject,
        level: Level,
        target: Level,
        decision: Decision | None,
        dry_run: bool,
        now: datetime,
    ) -> NoticeStep:
        last, pending = previous.get("lastNotice"), previous.get("pendingNotice")
        result = NoticeStep({"lastNotice": last, "pendingNotice": pending})
        channels = subject.contacts.channels
        if not channels:
            return result
        state = n.NoticeState(level, target)
        told_for_real = bool(last and not last.get("dryRun"))
        before = n.NoticeState.from_record(last if dry_run or told_for_real else None)
        if state == before:
            result.fields["pendingNotice"] = None  # superseded: the tenant already knows this state
            return result
        notice = n.notice_id(subject.context.policy_uid, (last or {}).get("id", ""), state)
        if pending and pending.get("id") == notice:
            if now < parse_time(pending["nextAttemptAt"]):
                result.due = parse_time(pending["nextAttemptAt"])
                return result
            since, attempts, done = (
                parse_time(pending["since"]),
                int(pending["attempts"]),
                pending["channels"],
            )
        else:
            since, attempts, done = now, 0, []
        document = n.build_notice(subject.context, notice, before, state, decision, since)
        record = {"id": notice, "level": level.api_name, "targetLevel": target.api_name}
        if dry_run:
            body = n.encode(document).decode()
            result.events.append((NOTICE_DRY_RUN, f"would send to {', '.join(channels)}: {body}", False))
            result.fields["lastNotice"] = {
                **record,
                "sentAt": format_time(now),
                "channels": [],
                "skipped": [],
                "dryRun": True,
            }
            result.fields["pendingNotice"] = None
            return result
        sent, skipped, errors = list(done), [], []
        for channel in channels:
            if channel in sent:
                continue
            try:
                if channel == "webhook" and not self.secret:
                    skipped.append("webhook: not called, no HMAC key configured (--notice-secret)")
                    continue
                self._send(channel, subject, document)
                sent.append(channel)
            except NoticeError as exc:
                errors.append(f"{channel}: {exc}")
        if errors:
            attempts += 1
            retry_at = now + n.retry_delay(attempts, self.retry_base)
            error = "; ".join(errors)
            result.fields["pendingNotice"] = {
                **record,
                "since": format_time(since),
                "attempts": attempts,
                "nextAttemptAt": format_time(retry_at),
                "error": error[:1024],
                "channels": sent,
            }
            result.due = retry_at
            result.events.append(
                (
                    NOTICE_FAILED,
                    f"notice {notice} ({document['kind']}, level {level.api_name}, target "
                    f"{target.api_name}) attempt {attempts}: {error}; retrying at {format_time(retry_at)}",
                    True,
                )
            )
            return result
        result.fields["lastNotice"] = {
            **record,
            "sentAt": format_time(now),
            "channels": sent,
            "skipped": skipped,
            "dryRun": False,
        }
        result.fields["pendingNotice"] = None
        if sent:
            result.events.append(
                (NOTICE_SENT, f"notice {notice} ({document['kind']}) sent to {', '.join(sent)}", False)
            )
        if skipped:
            result.events.append((NOTICE_SKIPPED, f"notice {notice}: {'; '.join(skipped)}", True))
        return result

    def _send(self, channel: str, subject: NoticeSubject, document: Mapping[str, Any]) -> None:
        if channel == "webhook" and subject.contacts.webhook_url:
            self._webhook(subject.contacts.webhook_url, document)
        elif channel == "sns" and subject.contacts.sns_topic_arn:
            self._sns(subject.contacts.sns_topic_arn, subject.aws, document)

    def _key(self) -> bytes:
        if not self.secret:
            raise NoticeError("no --notice-secret configured")
        try:
            secret = self._core.read_namespaced_secret(self.secret, self.namespace)
        except client.ApiException as exc:
            raise NoticeError(f"cannot read Secret {self.namespace}/{self.secret}: {exc.reason}") from exc
        value = (secret.data or {}).get(SECRET_KEY)
        if not value:
            raise NoticeError(f"Secret {self.namespace}/{self.secret} has no key {SECRET_KEY}")
        return base64.b64decode(value)

    def _webhook(self, url: str, document: Mapping[str, Any]) -> None:
        body = n.encode(document)
        timestamp = int(time.time())  # signed at send time: a retry carries a fresh timestamp
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                n.ID_HEADER: document["id"],
                n.TIMESTAMP_HEADER: str(timestamp),
                n.SIGNATURE_HEADER: n.signature(self._key(), timestamp, body),
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            raise NoticeError(f"{url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise NoticeError(f"{url}: {getattr(exc, 'reason', exc)}") from exc

    def _sns(self, topic: str, scope: AwsScope | None, document: Mapping[str, Any]) -> None:
        if self.aws is None:
            raise NoticeError("no AWS sessions configured")
        region = topic.split(":")[3]
        scope = scope or AwsScope(regions=(region,), tag_key="", tag_value="")
        try:
            self.aws.client(scope, "sns", region).publish(
                TopicArn=topic, Message=n.encode(document).decode(), Subject=n.subject(document)
            )
        except Exception as exc:  # botocore's errors and any connection failure alike
            raise NoticeError(f"publish to {topic}: {exc}") from exc
