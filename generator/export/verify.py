"""`verify FILE`: re-prove every line of an export, and every manifest field verify relies on, against the review store.

Each line must still map to a live accepting decision by a named reviewer whose hash recomputes,
whose proof holds under the store's key (kept outside the store, so raw SQL cannot make one), and
whose content is the line's content (seed lines: a verified seed with that content); no example
may be exported twice; what the manifest says of each line and in its summary must agree with the
store; and the whole decision chain must be intact. Lines are matched to manifest entries by
their sha256, so a line edited, added or removed after export is reported by its own number.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice, zip_longest
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from generator.batching import batched
from generator.errors import UserError
from generator.examples import FormatError, messages_hash
from generator.export.exporter import file_sha256, store_location
from generator.export.formats import FORMATS, ExportFormat
from generator.export.manifest import find_manifest, iter_manifest_entries, read_manifest_header
from generator.export.selection import REJECTING_ACTIONS, gate_problem, hashed_fields
from generator.export.verify_summary import Tally, chain_anchor, summary_problems
from generator.export.verify_workers import UNKNOWN, ChainFacts, Claims, fingerprint, start_walk, walk_chain, walk_elsewhere
from generator.export.workers import begin_snapshot
from generator.store.audit import NO_PROOF, ChainBreak, latest_live_decision_id
from generator.store.models import ACCEPTING_ACTIONS, Candidate, Decision, SeedRecord, StoreMeta
from generator.store.signing import SigningKey, key_path, load_key, missing_key_error, store_identity

BATCH = 500
# Failures (and legacy lines) kept for the report; the counts are always complete.
MAX_LISTED = 1000


@dataclass(frozen=True)
class Failure:
    file: str
    line: int | None  # None: about the file or the store as a whole
    problem: str

    def render(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}" if self.line else f"{self.file}: {self.problem}"


@dataclass
class VerifyReport:
    manifest: Path
    format: str
    lines_checked: int = 0
    failure_count: int = 0
    failures: list[Failure] = field(default_factory=list)
    # Lines whose decision was made before decisions were signed (a store older than signing):
    # proven by the hash chain, not by the key. Not failures, but not as strong a proof.
    legacy_count: int = 0
    legacy_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure_count == 0

    @property
    def notes(self) -> list[str]:
        """What a reader of an OK report must still know."""
        if not self.legacy_count:
            return []
        shown = ", ".join(self.legacy_lines[:5]) + (", ..." if self.legacy_count > 5 else "")
        return [
            f"{self.legacy_count} line(s) rest on legacy decisions, made before decisions were signed ({shown}): "
            "the hash chain proves them, but no key does"
        ]

    def fail(self, file: str, line: int | None, problem: str) -> None:
        self.failure_count += 1
        if len(self.failures) < MAX_LISTED:
            self.failures.append(Failure(file, line, problem))

    def merge(self, other: VerifyReport) -> None:
        """Add another report's lines and failures to this one's."""
        self.lines_checked += other.lines_checked
        self.failure_count += other.failure_count
        self.failures.extend(other.failures[: MAX_LISTED - len(self.failures)])
        self.legacy_count += other.legacy_count
        self.legacy_lines.extend(other.legacy_lines[: MAX_LISTED - len(self.legacy_lines)])

    def legacy(self, file: str, line: int) -> None:
        self.legacy_count += 1
        if len(self.legacy_lines) < MAX_LISTED:
            self.legacy_lines.append(f"{file}:{line}")


class _Pair(NamedTuple):
    """An exported line matched to its manifest entry (a tuple: a frozen dataclass cost ~1 us a line to build)."""

    line_number: int
    text: bytes
    entry: dict[str, Any]


@dataclass(frozen=True)
class _Proof:
    """What every candidate line is checked against beyond its own rows."""

    key: SigningKey | None  # None only when no decision in the store needs a proof
    signed_from: int  # decisions from this id on must carry a proof
    exported_seq: int | None  # the chain head when the export was made (no exported decision is newer); None: unknown
    # The chain walk over this same snapshot: which decisions' hashes and proofs it proved (a line
    # need not prove them again) and each candidate's latest decision. None while the walk runs
    # in another process: then `claims` records what the lines take on trust, settled afterwards.
    facts: ChainFacts | None
    claims: Claims | None = None

    @property
    def assumed(self) -> bool:
        return self.claims is not None

    def proven_by_chain(self, decision_id: int) -> bool:
        if self.claims is not None:
            return self.claims.proven(decision_id)
        proven = self.facts.proven if self.facts is not None else b""
        return decision_id < len(proven) and proven[decision_id] == 1

    def latest_live(self, candidate_id: int, decision_id: int, rows: _Rows) -> int | None:
        """The candidate's latest live decision, `decision_id` being the one the line stands on."""
        if self.claims is not None:
            return self.claims.latest_live(candidate_id, decision_id)
        newest = self.facts.latest_live(candidate_id) if self.facts is not None else UNKNOWN
        return rows.latest.get(candidate_id) if newest == UNKNOWN else newest


def verify_export(session: Session, *, data_file: Path, walk_elsewhere_from: int | None = None) -> VerifyReport:
    """Check every line of the export whose training file is `data_file` (its manifest covers the validation file too).

    Raises UserError when the store's signing key is needed but not on this machine.
    `walk_elsewhere_from`: from how many decisions the chain is walked in a second process
    (default: verify_workers decides; tests pass 0 to take that path on a small store).
    """
    path = find_manifest(data_file)
    header = read_manifest_header(path)
    fmt = FORMATS.get(header.get("format", ""))
    report = VerifyReport(manifest=path, format=str(header.get("format")))
    # One snapshot for every read below (PostgreSQL: REPEATABLE READ): the chain walk's proofs
    # stand for the rows the line checks read afterwards.
    head = begin_snapshot(session)
    meta = store_identity(session)
    if "store_id" in header and header["store_id"] != meta.store_id:
        # Another store is not tampering: every line would "fail" for a reason that says nothing.
        raise wrong_store_error(header, path, verifying_against=f"{meta.store_id} at {store_location(session)}")
    if fmt is None:
        report.fail(path.name, None, f"unknown format {header.get('format')!r} in the manifest")
        return report
    key = _store_key(session, report, path.name, meta)
    anchor, problem = chain_anchor(session, header.get("decision_chain"))
    if problem:
        report.fail(path.name, None, problem)
    # Where signing began: the key file's word when there is one, not the store's (see _store_key).
    signed_from = key.signed_from_decision if key is not None else meta.signed_from_decision
    exported_seq = anchor[0] if anchor else None
    elsewhere = head.seq >= walk_elsewhere_from if walk_elsewhere_from is not None else walk_elsewhere(session, head.seq)
    if not elsewhere:
        # The chain first: each decision's hash and proof computed once, here, not again per line.
        facts = walk_chain(session, key=key, head=head)
        lines, tally = _check_lines(session, path, header, fmt, _Proof(key, signed_from, exported_seq, facts))
    else:
        pool, walked = start_walk(session, with_key=key is not None)
        try:
            claims = Claims()
            lines, tally = _check_lines(session, path, header, fmt, _Proof(key, signed_from, exported_seq, None, claims))
            try:
                elsewhere_facts: ChainFacts | None = walked.result()
            except Exception:  # noqa: BLE001 (the worker died or its store read failed: this process walks instead)
                elsewhere_facts = None
        finally:
            pool.shutdown()
        if elsewhere_facts is not None and elsewhere_facts.head == head:
            facts = elsewhere_facts
        else:  # or a decision was saved since this snapshot began: walk this one
            facts = walk_chain(session, key=key, head=head)
        if not claims.hold(facts):  # a line stood on a decision the walk did not prove: check them all again
            lines, tally = _check_lines(session, path, header, fmt, _Proof(key, signed_from, exported_seq, facts))
    report.merge(lines)
    for problem in summary_problems(session, header, tally):
        report.fail(path.name, None, problem)
    _check_chain(session, report, path.name, anchor, facts.breaks)
    return report


def _check_lines(session: Session, path: Path, header: dict[str, Any], fmt: ExportFormat, proof: _Proof) -> tuple[VerifyReport, Tally]:
    """Every line of every file the manifest lists, against its entry and the store: the failures, and what the entries add up to."""
    report = VerifyReport(manifest=path, format=fmt.name)
    tally = Tally()
    entries = tally.counted(iter_manifest_entries(path))
    names = [described["path"] for described in header["files"]]
    for index, described in enumerate(header["files"]):
        name = described["path"]
        file_entries = islice(entries, int(described["lines"]))
        target = path.parent / name
        if not target.is_file():
            report.fail(name, None, "the file is missing")
        else:
            for batch in batched(_pairs(report, name, target, described, file_entries), BATCH):
                _check_batch(session, report, fmt, batch, files=names, index=index, proof=proof, tally=tally)
        for _ in file_entries:  # a missing file read none of its entries: keep the next file's aligned
            pass
    return report, tally


def wrong_store_error(header: dict[str, Any], manifest: Path, *, verifying_against: str) -> UserError:
    """Exit 2: the export came from another store; say which, and how to point verify at it."""
    made_from = _shown(header.get("store_id"))
    location = header.get("store_location")
    where = f" at {_shown(location)}" if location else ""
    return UserError(
        f"this export was made from store {made_from}{where}; you are verifying against {verifying_against}: pass --db",
        file=manifest,
        fix=f"synthgate --db {_shown(location)} verify ..." if location else "pass --db with the store the export was made from",
    )


def _store_key(session: Session, report: VerifyReport, name: str, meta: StoreMeta) -> SigningKey | None:
    """The store's key; None when no decision needs one. A key that is needed but missing is a user error (exit 2)."""
    key = load_key(meta)
    if key is None:
        newest = session.exec(select(func.max(Decision.id))).one()
        if newest is not None and newest >= meta.signed_from_decision:
            raise missing_key_error(key_path(meta.store_id))
        return None
    if key.signed_from_decision != meta.signed_from_decision:
        # Raising it in the store would pass forged decisions off as legacy ones.
        report.fail(
            name,
            None,
            f"the store says its decisions are signed from decision {meta.signed_from_decision} on, but its key was made "
            f"when signing began at decision {key.signed_from_decision} (the store's identity row was changed)",
        )
    return key


def _digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def _pairs(report: VerifyReport, name: str, target: Path, described: dict[str, Any], entries: Iterator[dict[str, Any]]) -> Iterator[_Pair]:
    """Lines matched to their entries; lines and entries that match nothing are reported here."""
    if file_sha256(target) == described.get("sha256"):
        # The file is byte-for-byte what was exported: line n is entry n, if the entries agree.
        with target.open("rb") as handle:
            for number, (text, entry) in enumerate(zip_longest(handle, entries), start=1):
                if text is None:
                    report.fail(name, None, f"the manifest lists a line {number} that the file does not have")
                    continue
                report.lines_checked += 1
                text = text.rstrip(b"\n")
                # The digest first and inline, no tuples built: this runs for every line.
                if (
                    type(entry) is not dict
                    or entry.get("sha256") != hashlib.sha256(text).hexdigest()
                    or entry.get("line") != number
                    or entry.get("file") != name
                ):
                    report.fail(name, number, "the manifest has no entry for this line (the manifest was altered)")
                    continue
                yield _Pair(number, text, entry)
        return
    lines = target.read_bytes().splitlines()
    listed = [e for e in entries if isinstance(e, dict) and e.get("file") == name]
    report.lines_checked += len(lines)
    expected = [e.get("sha256") for e in listed]
    actual = [_digest(text) for text in lines]
    matcher = difflib.SequenceMatcher(a=expected, b=actual, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                yield _Pair(j + 1, lines[j], listed[i])
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for j in range(j1, j1 + paired):
            report.fail(name, j + 1, "edited after export: it differs from the line exported here")
        for j in range(j1 + paired, j2):
            report.fail(name, j + 1, "not in the manifest: added after export")
        for i in range(i1 + paired, i2):
            report.fail(name, None, f"exported line {listed[i].get('line', i + 1)!r} is missing (removed after export)")


def _read_line(fmt: ExportFormat, text: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, Any]:
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON ({exc})") from None
    problems = fmt.problems(record)
    if problems:
        raise FormatError(f"breaks the {fmt.name} format rules: {problems[0]}")
    return (*fmt.read_back(record), record)


def _shown(value: Any) -> str:
    """A manifest value in a message: as it is when plain text, quoted and escaped otherwise (no control characters reach a terminal)."""
    return value if isinstance(value, str) and value.isprintable() and value.strip() == value and value else repr(value)


def _whole_number(value: Any) -> int | None:
    """An id from the manifest, or None when it is not one (the manifest is untrusted input)."""
    return value if type(value) is int else None  # exact: JSON gives no other int subclass than bool


@dataclass(frozen=True)
class _Rows:
    """The store's rows behind one batch of lines, fetched with one query per table."""

    decisions: dict[int, Any]  # plain rows, not ORM objects: a million-line export is checked 500 lines at a time
    origins: dict[int, Any]  # candidate id -> its run, template hash and variant group
    originals: dict[int, list[dict[str, Any]]]  # candidate id -> the model's text (preference formats only)
    latest: dict[int, int | None]  # candidate id -> its latest live decision, where the chain walk could not tell
    claimed: bool  # the decisions were not read: each line's reliance on its decision is a claim (see verify_workers)
    seeds: dict[str, SeedRecord]


def _load_rows(session: Session, fmt: ExportFormat, batch: list[_Pair], proof: _Proof) -> _Rows:
    # A variant pair's line stands on two decisions: its entry's, and its rejected side's.
    sides = [p.entry for p in batch if p.entry.get("kind") != "seed"]
    sides += [loser for p in batch if p.entry.get("kind") == "pair" and isinstance(loser := p.entry.get("rejected"), dict)]
    candidate_ids = {i for side in sides if (i := _whole_number(side.get("candidate_id"))) is not None}
    decision_ids = {i for side in sides if (i := _whole_number(side.get("decision_id"))) is not None}
    seed_ids = {i for p in batch if p.entry.get("kind") == "seed" and isinstance(i := p.entry.get("seed_id"), str)}
    # SQLAlchemy's select: SQLModel's typed overloads stop at four columns.
    origins = sa_select(col(Candidate.id), col(Candidate.run_id), col(Candidate.template_hash), col(Candidate.variant_group))
    # Core statements on the connection, not through the ORM session: the ORM's per-row loading
    # was a fifth of verify's time (3.9 of 20 s for 30,000 lines, profiled).
    connection = session.connection()
    originals: dict[int, list[dict[str, Any]]] = {}
    if fmt.needs_original or fmt.labelled:
        statement = select(Candidate.id, Candidate.messages).where(_among(col(Candidate.id), candidate_ids))
        originals = {row[0]: row[1] for row in connection.execute(statement)}
    # A decision the chain walk proved is read without the columns only its hash covers (its
    # JSON columns cost ~3 us a row to decode); labelled formats read reasons and corrections.
    # (An entry that names reasons has them compared, whatever its format.)
    narrow = (
        not fmt.labelled
        and (proof.assumed or all(proof.proven_by_chain(i) for i in decision_ids))
        and not any("reasons" in side for side in sides)
    )
    # The store answers for a candidate whose newest decision was undone (the walk cannot say which
    # earlier one is live): the rare case, so asked of the rare candidate, not of every one
    # (a subquery per candidate cost ~4 us a line).
    unknown = [i for i in candidate_ids if proof.facts is not None and proof.facts.latest_live(i) == UNKNOWN]
    # While the walk runs elsewhere, a line's decision is not read here at all: the line's check
    # records the fingerprint of what it relies on, and the walk's own reading of the row settles it.
    claimed = narrow and proof.assumed
    decision_columns = _CHECKED_COLUMNS if narrow else [_DECISIONS]
    decisions = sa_select(*decision_columns).where(_among(_DECISIONS.c.id, decision_ids))
    return _Rows(
        # .all(): one fetchall, not a fetchone per row.
        decisions={} if claimed else {d.id: d for d in connection.execute(decisions).all()},
        claimed=claimed,
        origins={row.id: row for row in connection.execute(origins.where(_among(col(Candidate.id), candidate_ids))).all()},
        originals=originals,
        latest=_latest_live(connection, unknown) if unknown else {},
        # Asked only of a batch with seed lines: an ORM query per batch cost ~0.14 ms, 0.3 s at 1,000,000 lines.
        seeds={s.id: s for s in session.exec(select(SeedRecord).where(col(SeedRecord.id).in_(seed_ids)))} if seed_ids else {},
    )


def _latest_live(connection: Any, candidate_ids: list[int]) -> dict[int, int | None]:
    # Built only when asked: the subquery's aliases cost ~0.3 ms to build, 6% of verify when built per batch.
    statement = sa_select(col(Candidate.id), latest_live_decision_id(Candidate.id)).where(col(Candidate.id).in_(candidate_ids))
    return {row[0]: row[1] for row in connection.execute(statement)}


_DECISIONS = Decision.__table__  # type: ignore[attr-defined]
# What a line check reads of a decision whose hash and proof the chain walk already proved.
_CHECKED_COLUMNS = [_DECISIONS.c[name] for name in ("id", "candidate_id", "action", "reviewer", "content_hash", "created_at", "hash")]


def _among(column: Any, ids: set[int]) -> Any:
    """`column IN ids`, as a range when the ids are dense (the usual batch: consecutive candidates).

    Rows in the range but not asked for are harmless (rows are looked up by the ids asked for),
    and a range costs a fraction of a 500-value IN list, whose bound values SQLAlchemy renders
    per statement (30,000 lines, decisions: 10.1 -> 3.1 us a row; candidates 7.9 -> ~4).
    """
    if ids and max(ids) - min(ids) < 2 * len(ids) + 64:
        return column.between(min(ids), max(ids))
    return column.in_(ids)


def _check_batch(
    session: Session,
    report: VerifyReport,
    fmt: ExportFormat,
    batch: list[_Pair],
    *,
    files: list[str],
    index: int,
    proof: _Proof,
    tally: Tally,
) -> None:
    name = files[index]
    rows = _load_rows(session, fmt, batch, proof)
    for pair in batch:
        problem = _duplicate_problem(pair, files, index, tally) or _line_problem(fmt, pair, rows, proof)
        kind = pair.entry.get("kind")
        if problem:
            report.fail(name, pair.line_number, problem)
        elif kind == "pair":
            sides = (pair.entry, pair.entry["rejected"])
            for side in sides:
                _note_origin(tally, rows.origins[side["candidate_id"]], name, pair.line_number)
            if min(side["decision_id"] for side in sides) < proof.signed_from:
                report.legacy(name, pair.line_number)
        elif kind != "seed":  # one side: no generators built per line (~1 us)
            _note_origin(tally, rows.origins[pair.entry["candidate_id"]], name, pair.line_number)
            if pair.entry["decision_id"] < proof.signed_from:
                report.legacy(name, pair.line_number)


def _line_problem(fmt: ExportFormat, pair: _Pair, rows: _Rows, proof: _Proof) -> str | None:
    try:
        final, original, record = _read_line(fmt, pair.text)
    except FormatError as exc:
        return str(exc)
    if pair.entry.get("kind") == "seed":
        return _seed_problem(pair.entry, final, rows.seeds)
    if pair.entry.get("kind") == "pair":
        return _variant_pair_problem(pair.entry, final, original, rows, proof)
    if fmt.labelled:
        if pair.entry.get("label") is not record["label"]:
            return f"the line's label is {record['label']!r}, but the manifest's entry says {pair.entry.get('label')!r}"
        if record["label"] is False:
            return _negative_problem(pair.entry, final, rows, proof)
    return _candidate_problem(pair.entry, final, original, rows, proof)


def _negative_problem(entry: dict[str, Any], answer: list[dict[str, Any]], rows: _Rows, proof: _Proof) -> str | None:
    """A line labelled false: a candidate a human rejected, or the model's original that a human's correction replaced."""
    if entry.get("action") == "reject":
        return _candidate_problem(entry, answer, None, rows, proof, actions=REJECTING_ACTIONS)
    decision = rows.decisions.get(_whole_number(entry.get("decision_id")) or 0)
    corrected = decision.edited_messages if decision is not None and entry.get("action") == "edit" else None
    if corrected is None:
        return "a line labelled false must come from a rejection or from a correction (the manifest entry names neither)"
    # The correction is what the decision accepted; the line must be the model's original it replaced.
    return _candidate_problem(entry, corrected, answer, rows, proof)


def _variant_pair_problem(
    entry: dict[str, Any], chosen: list[dict[str, Any]], rejected: list[dict[str, Any]] | None, rows: _Rows, proof: _Proof
) -> str | None:
    """A pair from a variant group: `chosen` under its accepting decision, `rejected` under its own rejecting one, one group."""
    loser = entry.get("rejected")
    if rejected is None or not isinstance(loser, dict):
        return "a pair line needs a rejected answer and the decision that rejected it (the manifest entry names none)"
    problem = _candidate_problem(entry, chosen, None, rows, proof)
    if problem:
        return problem
    problem = _candidate_problem(loser, rejected, None, rows, proof, actions=REJECTING_ACTIONS)
    if problem:
        return f"the rejected side: {problem}"
    winner_id, loser_id = entry["candidate_id"], loser["candidate_id"]
    groups = {rows.origins[winner_id].variant_group, rows.origins[loser_id].variant_group}
    if winner_id == loser_id or groups != {entry.get("variant_group")} or None in groups:
        return f"candidates {winner_id} and {loser_id} are not two answers of variant group {_shown(entry.get('variant_group'))}"
    return None


def _duplicate_problem(pair: _Pair, files: list[str], index: int, tally: Tally) -> str | None:
    """The same example on two lines: a copied line with a copied manifest entry would otherwise prove itself."""
    here = index << 32 | pair.line_number
    kind = pair.entry.get("kind")
    if kind == "seed":
        ident: Any = pair.entry.get("seed_id")
        if not isinstance(ident, str):
            return None  # reported as a damaged entry by the seed checks
        first = tally.first_seed_line.setdefault(ident, here)
        what = f"seed {_shown(ident)}"
    elif kind == "pair":
        loser = pair.entry.get("rejected")
        ident = (
            _whole_number(pair.entry.get("candidate_id")),
            _whole_number(loser.get("candidate_id")) if isinstance(loser, dict) else None,
        )
        if None in ident:
            return None  # reported as a damaged entry by the pair checks
        first = tally.first_pair_line.setdefault(ident, here)
        what = f"the pair of candidates {ident[0]} and {ident[1]}"
    else:
        ident = _whole_number(pair.entry.get("candidate_id"))
        if ident is None:
            return None
        # A labelled format holds a corrected example twice: the correction true, the original false.
        first = tally.first_candidate_line.setdefault(ident << 1 | (pair.entry.get("label") is False), here)
        what = f"candidate {ident}"
    if first == here:
        return None
    first_file, first_line = files[first >> 32], first & 0xFFFFFFFF
    lines = (
        f"lines {first_line} and {pair.line_number}"
        if first_file == files[index]
        else f"{first_file}:{first_line} and {files[index]}:{pair.line_number}"
    )
    return f"{what} is exported twice ({lines})"


def _note_origin(tally: Tally, origin: Any, name: str, line_number: int) -> None:
    # The line is named only for a run or template not seen before: almost every line shares both.
    run_id, template_hash = origin[1], origin[2]  # by position: a Row's attribute lookup costs more
    if run_id is not None and run_id not in tally.run_ids:
        tally.run_ids[run_id] = f"{name}:{line_number}"
    if template_hash is not None and template_hash not in tally.template_hashes:
        tally.template_hashes[template_hash] = f"{name}:{line_number}"


def _seed_problem(entry: dict[str, Any], final: list[dict[str, Any]], seeds: dict[str, SeedRecord]) -> str | None:
    seed_id = entry.get("seed_id")
    if messages_hash(final) != entry.get("content_hash"):
        return f"the content differs from seed {_shown(seed_id)} as exported"
    seed = seeds.get(seed_id) if isinstance(seed_id, str) else None
    if seed is None or seed.content_hash != entry.get("content_hash"):
        return f"seed {_shown(seed_id)} is no longer in the verified seed set (removed or changed in the seed files)"
    if seed.verified_by != entry.get("verified_by"):
        return f"the manifest says seed {_shown(seed_id)} was verified by {entry.get('verified_by')!r}, but the store says {seed.verified_by!r}"
    return None


def _candidate_problem(
    entry: dict[str, Any],
    final: list[dict[str, Any]],
    original: list[dict[str, Any]] | None,
    rows: _Rows,
    proof: _Proof,
    actions: tuple[str, ...] = ACCEPTING_ACTIONS,
) -> str | None:
    decision_id, candidate_id = _whole_number(entry.get("decision_id")), _whole_number(entry.get("candidate_id"))
    if decision_id is None or candidate_id is None:
        return "the manifest entry for this line names no decision and candidate (the manifest was altered)"
    if rows.claimed and proof.claims is not None:
        problem = _claimed_problem(entry, decision_id, candidate_id, final, original, rows, proof, proof.claims, actions)
        if problem:
            # Its wording may rest on a field the decision does not hold: the lines are checked
            # again against the rows, and the report says what they say.
            proof.claims.conflict = True
        return problem
    decision = rows.decisions.get(decision_id)
    if decision is None:
        return f"decision {decision_id} no longer exists (removed from the database)"
    if decision.candidate_id != candidate_id:
        return f"decision {decision_id} is about candidate {decision.candidate_id}, not {candidate_id}"
    proven = proof.proven_by_chain(decision_id)
    # A proven row's hash is not recomputed, so the gate needs only the fields it reads itself.
    fields = (
        {"action": decision.action, "reviewer": decision.reviewer, "content_hash": decision.content_hash}
        if proven
        else hashed_fields(decision)
    )
    problem = gate_problem(fields, stored_hash=decision.hash, final_messages=final, actions=actions, hash_proven=proven)
    if problem:
        return f"{problem} (decision {decision_id})"
    if decision.hash != entry.get("decision_hash"):
        return f"decision {decision_id} is not the one recorded at export (its hash changed)"
    if decision_id >= proof.signed_from and (proof.key is None or not (proven or proof.key.proves(decision.hash, decision.proof))):
        return f"decision {decision_id} {NO_PROOF}"
    problem = _entry_field_problem(entry, decision)
    if problem:
        return problem
    if proof.exported_seq is not None and decision_id > proof.exported_seq:
        return f"decision {decision_id} was made after this export (the manifest's chain head is decision {proof.exported_seq})"
    newest = proof.latest_live(candidate_id, decision_id, rows) if candidate_id in rows.origins else None
    if newest != decision_id:
        return (
            f"decision {decision_id} was undone: candidate {candidate_id} is no longer {'accepted' if actions == ACCEPTING_ACTIONS else 'rejected'}"
            if newest is None
            else f"candidate {candidate_id} was decided again after export (decision {newest})"
        )
    if original is not None:
        model_text = rows.originals.get(candidate_id)
        if model_text is None or messages_hash(original) != messages_hash(model_text):
            return f"the non-preferred output is not candidate {candidate_id}'s original text"
    return None


def _claimed_problem(
    entry: dict[str, Any],
    decision_id: int,
    candidate_id: int,
    final: list[dict[str, Any]],
    original: list[dict[str, Any]] | None,
    rows: _Rows,
    proof: _Proof,
    claims: Claims,
    actions: tuple[str, ...],
) -> str | None:
    """_candidate_problem's checks with the decision's fields taken from the entry, recorded as claims for the walk to settle.

    The fingerprint holds everything _candidate_problem compares with the row: candidate, action,
    reviewer, decided_at, hash, and the content hash of the line. Not reading 1,000,000 decision
    rows here saved ~8 us a line (their type processing, above all the timestamps).
    """
    action, reviewer = entry.get("action"), entry.get("reviewer")
    if action not in actions or not isinstance(reviewer, str) or not reviewer.strip():
        return "the decision's action or reviewer does not let this line through"
    print_ = fingerprint(candidate_id, action, reviewer, entry.get("decided_at"), entry.get("decision_hash"), messages_hash(final))
    claims.decision_says(decision_id, print_)
    claims.proven(decision_id)
    if proof.exported_seq is not None and decision_id > proof.exported_seq:
        return f"decision {decision_id} was made after this export (the manifest's chain head is decision {proof.exported_seq})"
    if candidate_id not in rows.origins:
        return f"decision {decision_id} was undone: candidate {candidate_id} no longer exists"
    claims.latest_live(candidate_id, decision_id)
    if original is not None:
        model_text = rows.originals.get(candidate_id)
        if model_text is None or messages_hash(original) != messages_hash(model_text):
            return f"the non-preferred output is not candidate {candidate_id}'s original text"
    return None


def _entry_field_problem(entry: dict[str, Any], decision: Any) -> str | None:
    """What the manifest says of the decision (the fields a reader trusts) must be what the store holds."""
    decided_at = decision.created_at.isoformat()
    if (
        entry.get("reviewer") == decision.reviewer
        and entry.get("action") == decision.action
        and entry.get("decided_at") == decided_at
        and ("reasons" not in entry or entry["reasons"] == decision.reasons)
    ):
        return None  # the usual answer, without building the message's table (~1 us a line)
    stored = {"reviewer": decision.reviewer, "action": decision.action, "decided_at": decided_at}
    if "reasons" in entry:
        stored["reasons"] = decision.reasons
    for name, value in stored.items():
        if entry.get(name) != value:
            return f"the manifest's {name} for this line is {entry.get(name)!r}, but decision {decision.id} says {value!r}"
    return None


def _check_chain(session: Session, report: VerifyReport, name: str, anchor: tuple[int, str] | None, breaks: list[ChainBreak]) -> None:
    for chain_break in breaks:
        where = f"decision {chain_break.decision_id}: " if chain_break.decision_id else ""
        report.fail(name, None, f"decision history broken: {where}{chain_break.problem}")
    if anchor is None or anchor[0] == 0:
        return
    seq, head_hash = anchor
    row = session.get(Decision, seq)
    if row is None or row.hash != head_hash:
        report.fail(
            name,
            None,
            f"manifest field decision_chain.head_hash is not decision {seq}'s hash in the store (the manifest or the decision history was changed)",
        )
