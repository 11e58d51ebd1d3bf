"""The store's signing key: kept outside the store, created once, and the proof it puts on every decision.

A decision's hash can be recomputed by anyone who can read the published scheme, so it proves
nothing about *who wrote* the row. The proof -- HMAC-SHA256 of the hash under a 32-byte key that
lives in the user's config folder, never in the store -- does: someone with write access to the
store but not to the key file cannot make one.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from generator.errors import UserError, WorkFailed
from generator.store.models import Decision, StoreMeta

KEY_BYTES = 32
KEY_FORMAT = 1


@dataclass(frozen=True)
class SigningKey:
    """A store's key, with what the key file says about the store (which the store itself cannot be trusted to say)."""

    store_id: str
    # Where signing began, as recorded when the key was made: the store's own copy could be raised
    # by someone with write access, turning forged decisions into "legacy" ones.
    signed_from_decision: int
    secret: bytes = field(repr=False)  # never printed, never logged

    def proof(self, decision_hash: str) -> str:
        # hmac.digest: one call into OpenSSL, several times quicker than hmac.new; verify runs it per decision.
        return hmac.digest(self.secret, decision_hash.encode("ascii"), "sha256").hex()

    def proves(self, decision_hash: str, proof: str | None) -> bool:
        return proof is not None and hmac.compare_digest(self.proof(decision_hash), proof)


def keys_folder() -> Path:
    """$SYNTHGATE_HOME/keys, else the user's config folder for synthgate (e.g. ~/.config/synthgate/keys)."""
    home = os.environ.get("SYNTHGATE_HOME")
    if home:
        return Path(home).expanduser() / "keys"
    import platformdirs  # only where a key is needed: it is not free to import on every command

    return Path(platformdirs.user_config_dir("synthgate")) / "keys"


def key_path(store_id: str) -> Path:
    return keys_folder() / f"{store_id}.key"


def store_identity(session: Session) -> StoreMeta:
    meta = session.get(StoreMeta, 1)
    if meta is None or not _is_uuid(meta.store_id):
        # The row is guarded by triggers; without it the store cannot name its key.
        raise WorkFailed(
            "the review store has no valid identity (its store_meta row was removed or changed)",
            fix="restore the store from a backup; its decisions cannot be proved without it",
        )
    return meta


def _is_uuid(text: str) -> bool:
    # The id becomes a file name: only a canonical UUID can never point outside the keys folder.
    try:
        return str(uuid.UUID(text)) == text
    except (ValueError, TypeError, AttributeError):
        return False


def missing_key_error(path: Path) -> UserError:
    # One line (no separate fix line): the path and what to do are all the user needs.
    return UserError(
        "the key that signs this review store's decisions is not on this machine; "
        "copy this file from the machine where the store was created, or set SYNTHGATE_HOME to the folder holding keys/",
        file=path,
    )


def load_key(meta: StoreMeta) -> SigningKey | None:
    """The store's key from the key file, or None when there is none on this machine."""
    path = key_path(meta.store_id)
    try:
        data = json.loads(path.read_text(encoding="ascii"))
        key = SigningKey(
            store_id=data["store_id"], signed_from_decision=int(data["signed_from_decision"]), secret=bytes.fromhex(data["key"])
        )
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"cannot read the signing key: {exc.strerror or exc}", file=path, fix="make the file readable by you") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        # Never echo the content: it may be (part of) a secret.
        raise UserError(
            "the signing key file is damaged", file=path, fix="copy it again from the machine where the store was created"
        ) from None
    if key.store_id != meta.store_id or len(key.secret) != KEY_BYTES:
        raise UserError(
            f"this key file does not belong to review store {meta.store_id}",
            file=path,
            fix="copy the right key file from the machine where the store was created",
        )
    return key


def key_for_signing(session: Session) -> SigningKey:
    """The key to sign a new decision with, created on the store's first signed decision.

    Call it with the store's write lock held (after advancing the chain head): then two machines
    deciding at once cannot both create a key for one store.
    """
    meta = store_identity(session)
    key = load_key(meta)
    if key is not None:
        return key
    signed = session.exec(select(Decision.id).where(col(Decision.proof).is_not(None)).limit(1)).first()
    if signed is not None:
        # The store is already signed with a key that lives elsewhere: a new one here would make
        # this machine's decisions unprovable there, and the other way round.
        raise missing_key_error(key_path(meta.store_id))
    return _create_key(meta)


def _create_key(meta: StoreMeta) -> SigningKey:
    key = SigningKey(store_id=meta.store_id, signed_from_decision=meta.signed_from_decision, secret=secrets.token_bytes(KEY_BYTES))
    path = key_path(meta.store_id)
    body = {
        "synthgate_key": KEY_FORMAT,
        "store_id": key.store_id,
        "signed_from_decision": key.signed_from_decision,
        "key": key.secret.hex(),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                json.dump(body, handle)
                handle.flush()
                os.fsync(handle.fileno())
            # link, not rename: it fails if the key appeared meanwhile, so a key is never replaced,
            # and a reader sees the whole file or none.
            os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except FileExistsError:
        existing = load_key(meta)  # another process of this user made it first: use theirs
        if existing is None:
            raise WorkFailed("the signing key vanished while it was being created", file=path) from None
        return existing
    except OSError as exc:
        raise UserError(
            f"cannot create the signing key: {exc.strerror or exc}",
            file=path,
            fix="make the folder writable, or set SYNTHGATE_HOME to a folder you can write to",
        ) from None
    return key
