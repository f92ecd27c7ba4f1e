"""The audit log's hash chain: sealing records and verifying a log's text.  Pure: no I/O.

A log is JSON Lines, one record per line.  A record's `hash` is the sha256 of its canonical
JSON (sorted keys, no spaces, UTF-8) without the `hash` field; its `prev` is the `hash` of
the record before it (GENESIS for the first record of a log).  `seq` counts from 0.

A segment is a log started after the previous file was found with a torn last line (a crash
during a write): its first record is a SEGMENT_STARTED record whose `prev` and `seq` carry on
from the last intact record of that file, named in its `previousSegment`.  Verifying the
segment alone trusts that link; verifying both files in order checks it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
SEGMENT_STARTED = "SegmentStarted"
CHAIN_FIELDS = ("seq", "time", "prev", "hash")


def canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(record: Mapping[str, Any]) -> str:
    """The hash of a record: of its canonical bytes without the `hash` field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def seal(payload: Mapping[str, Any], seq: int, time: str, prev: str) -> dict[str, Any]:
    """The record that follows a record hashed `prev` (GENESIS first) and numbered seq - 1."""
    clash = set(payload) & set(CHAIN_FIELDS)
    if clash:
        raise ValueError(f"payload fields clash with the chain's: {sorted(clash)}")
    record: dict[str, Any] = {**payload, "seq": seq, "time": time, "prev": prev}
    record["hash"] = digest(record)
    return record


def line(record: Mapping[str, Any]) -> str:
    """A record as one log line (with its newline)."""
    return canonical(record).decode() + "\n"


@dataclass(frozen=True)
class Verification:
    count: int  # intact records before the first problem (all of them when ok)
    last_hash: str  # hash of the last intact record (GENESIS if none)
    last_seq: int  # seq of the last intact record (-1 if none)
    bad_line: int | None = None  # 1-based line number of the first problem
    problem: str = ""
    torn: bool = False  # the problem is a torn last line (a crash during a write)
    continues: Mapping[str, Any] | None = None  # a segment's link to the file before it

    @property
    def ok(self) -> bool:
        return self.bad_line is None


def parse(text: str, number: int) -> tuple[dict[str, Any] | None, str]:
    try:
        record = json.loads(text)
    except ValueError:
        return None, f"line {number}: not a JSON record"
    if not isinstance(record, dict) or not all(k in record for k in CHAIN_FIELDS):
        return None, f"line {number}: not an audit record (needs {', '.join(CHAIN_FIELDS)})"
    return record, ""


def _check(raw: str, number: int, prev: str, seq: int, may_start_segment: bool) -> str:
    """What is wrong with line `number` given the chain so far; "" if nothing."""
    record, error = parse(raw, number)
    if record is None:
        return error
    if digest(record) != record["hash"]:
        return f"line {number}: record edited (its hash does not match its content)"
    if number == 1 and may_start_segment and record.get("event") == SEGMENT_STARTED:
        if not isinstance(record.get("previousSegment"), Mapping):
            return f"line {number}: {SEGMENT_STARTED} without previousSegment"
        return ""  # a segment: its prev and seq carry on from the file before it
    if record["prev"] != prev:
        where = f"line {number - 1}" if number > 1 else "the start of the log"
        return (
            f"line {number}: chain broken: prev does not match the hash of {where} "
            "(a record deleted, reordered or inserted)"
        )
    if record["seq"] != seq:
        return f"line {number}: seq {record['seq']}, expected {seq} (records deleted or inserted)"
    return ""


def verify(text: str, start_prev: str = GENESIS, start_seq: int = 0) -> Verification:
    """Check every line of a log; name the first one that breaks the chain.

    An edited record fails its own hash; a deleted, reordered or inserted record breaks the
    `prev` link (or the `seq` count) at the first line out of place.  Removing records from
    the end cannot be seen from the file alone: compare the count and last hash printed by
    an earlier verify.
    """
    lines = text.split("\n")
    complete = lines[:-1]  # the text after the last newline: "" or a torn record
    tail = lines[-1]
    prev, seq, count, continues = start_prev, start_seq, 0, None
    for number, raw in enumerate(complete, start=1):
        problem = _check(raw, number, prev, seq, start_prev == GENESIS)
        if problem:
            return Verification(count, prev, seq - 1, number, problem, continues=continues)
        record = json.loads(raw)
        if number == 1 and record.get("event") == SEGMENT_STARTED and start_prev == GENESIS:
            continues = dict(record["previousSegment"])
        prev, seq, count = record["hash"], record["seq"] + 1, count + 1
    if tail:
        number = len(complete) + 1
        return Verification(
            count,
            prev,
            seq - 1,
            number,
            f"line {number}: torn last record (no newline at its end: a crash during a write?)",
            torn=True,
            continues=continues,
        )
    return Verification(count, prev, seq - 1, continues=continues)


def verify_files(texts: Sequence[tuple[str, str]]) -> tuple[str, Verification]:
    """Verify logs given in order (name, text): each segment must carry on from the one before.

    Returns the name of the file the result is about (the first broken one, else the last).
    """
    prev, seq = GENESIS, 0
    result = Verification(0, GENESIS, -1)
    name = ""
    for index, (name, text) in enumerate(texts):
        if index:
            first, _ = parse(text.split("\n", 1)[0], 1)
            if first is None or first.get("event") != SEGMENT_STARTED:
                return name, Verification(0, prev, seq - 1, 1, f"line 1: not a {SEGMENT_STARTED} record")
            if first["prev"] != prev or first["seq"] != seq:
                return name, Verification(
                    0, prev, seq - 1, 1, "line 1: does not carry on from the intact end of the file before"
                )
        result = verify(text, prev, seq) if index else verify(text)
        if not result.ok and not (result.torn and index < len(texts) - 1):
            return name, result
        prev, seq = result.last_hash, result.last_seq + 1
    return name, result
