"""The audit log's hash chain: an intact log verifies; each kind of tampering is named."""

from __future__ import annotations

import json

import pytest

from tenant_enforcer.record.chain import GENESIS, SEGMENT_STARTED, digest, line, seal, verify, verify_files


def log_of(n: int, prev: str = GENESIS, first_seq: int = 0) -> list[str]:
    lines = []
    for i in range(n):
        record = seal(
            {
                "tenant": "acme",
                "event": "LevelChanged",
                "from": "None",
                "to": "Notice",
                "verdicts": [f"v{i}"],
            },
            first_seq + i,
            f"2026-11-27T10:00:0{i}Z",
            prev,
        )
        prev = record["hash"]
        lines.append(line(record))
    return lines


def test_an_intact_log_verifies_with_its_count_and_last_hash() -> None:
    lines = log_of(4)
    result = verify("".join(lines))
    assert result.ok, result.problem
    assert result.count == 4
    assert result.last_hash == json.loads(lines[-1])["hash"]
    assert json.loads(lines[0])["prev"] == GENESIS
    assert [json.loads(x)["prev"] for x in lines[1:]] == [json.loads(x)["hash"] for x in lines[:-1]]


def test_the_hash_is_of_the_canonical_json_without_the_hash() -> None:
    record = json.loads(log_of(1)[0])
    assert line(record) == log_of(1)[0]  # canonical: sorted keys, no spaces
    assert digest(record) == record["hash"]
    assert digest({**record, "to": "ScaleDown"}) != record["hash"]


def test_an_empty_log_is_intact() -> None:
    assert verify("").ok and verify("").count == 0


def test_an_edited_field_is_named() -> None:
    lines = log_of(4)
    lines[2] = lines[2].replace('"to":"Notice"', '"to":"None"')
    result = verify("".join(lines))
    assert not result.ok
    assert result.bad_line == 3 and "edited" in result.problem
    assert result.count == 2


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    lines = log_of(4)
    forged = json.loads(lines[1])
    forged["to"] = "None"
    lines[1] = line(seal({k: v for k, v in forged.items() if k not in ("seq", "time", "prev", "hash")},
                         forged["seq"], forged["time"], forged["prev"]))  # fmt: skip
    result = verify("".join(lines))
    assert result.bad_line == 3 and "chain broken" in result.problem


def test_a_deleted_line_is_named() -> None:
    lines = log_of(4)
    del lines[1]
    result = verify("".join(lines))
    assert result.bad_line == 2 and "chain broken" in result.problem


def test_a_deleted_first_line_is_named() -> None:
    result = verify("".join(log_of(3)[1:]))
    assert result.bad_line == 1 and "the start of the log" in result.problem


def test_two_swapped_lines_are_named() -> None:
    lines = log_of(4)
    lines[1], lines[2] = lines[2], lines[1]
    result = verify("".join(lines))
    assert result.bad_line == 2 and "chain broken" in result.problem


def test_an_inserted_line_is_named() -> None:
    lines = log_of(4)
    # a well-formed record, correctly hashed and chained to line 2: line 3 then no longer links
    inserted = seal(
        {"tenant": "acme", "event": "Lifted"}, 2, "2026-11-27T10:00:09Z", json.loads(lines[1])["hash"]
    )
    lines.insert(2, line(inserted))
    result = verify("".join(lines))
    assert result.bad_line == 4 and "chain broken" in result.problem


def test_an_inserted_garbage_line_is_named() -> None:
    lines = log_of(3)
    lines.insert(1, "{}\n")
    result = verify("".join(lines))
    assert result.bad_line == 2 and "not an audit record" in result.problem


def test_a_torn_last_line_is_named_as_torn() -> None:
    lines = log_of(3)
    text = "".join(lines) + lines[0][:20]
    result = verify(text)
    assert not result.ok and result.torn
    assert result.bad_line == 4 and "torn" in result.problem
    assert result.count == 3 and result.last_hash == json.loads(lines[2])["hash"]
    assert result.last_seq == 2


def test_a_last_line_without_its_newline_is_torn() -> None:
    lines = log_of(2)
    result = verify("".join(lines)[:-1])
    assert result.torn and result.bad_line == 2


def test_a_segment_carries_on_from_the_intact_end_of_a_torn_file() -> None:
    old = "".join(log_of(3)) + '{"seq": 3, "ti'
    intact = verify(old)
    start = seal(
        {"event": SEGMENT_STARTED, "previousSegment": {"file": "a.torn", "lastHash": intact.last_hash}},
        3, "2026-11-27T11:00:00Z", intact.last_hash,
    )  # fmt: skip
    new = line(start) + "".join(log_of(2, prev=start["hash"], first_seq=4))
    alone = verify(new)
    assert alone.ok and alone.count == 3 and alone.continues is not None
    name, both = verify_files([("a.torn", old), ("a", new)])
    assert both.ok and name == "a" and both.last_seq == 5
    name, swapped = verify_files([("a", new), ("a.torn", old)])
    assert not swapped.ok


def test_a_segment_that_does_not_carry_on_is_refused() -> None:
    old = "".join(log_of(3)) + "{"
    start = seal({"event": SEGMENT_STARTED, "previousSegment": {}}, 3, "t", GENESIS)
    name, result = verify_files([("old", old), ("new", line(start))])
    assert name == "new" and result.bad_line == 1


def test_payload_fields_may_not_shadow_the_chain() -> None:
    with pytest.raises(ValueError):
        seal({"hash": "x"}, 0, "t", GENESIS)
