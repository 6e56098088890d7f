"""The keys file: API keys mapped to principals, stored as salted hashes, with expiry and hot reload.

A key reads ``crm_<id>_<secret>``: ``id`` (8 hex digits) names the entry in the file and is not secret; the
secret is 32 random bytes. The file (``$CRMSCORE_KEYS_FILE``, else ``configs/keys.yaml`` in the working
directory when it exists) stores per entry the principal (name, role, team, owner id), a random salt and
``HMAC-SHA256(salt, key)``, never the key. A fast salted hash is enough because the secret has 256 bits of
entropy (no dictionary to guess from); the check compares digests with :func:`hmac.compare_digest` and does the
same work for an unknown id. Editing the file takes effect on the next request: :class:`KeyStore` compares the
file's (inode, size, mtime) on every check and reloads when it changed; a file that fails to parse keeps the
previous keys and logs why.

The shared keys of ``CRMSCORE_API_KEYS`` / ``CRMSCORE_API_KEYS_FILE`` (before roles existed) keep working as
principals of the role ``admin`` named ``shared-key``: they behave exactly as before (docs/access.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.messages import M_, message_of
from serving.access.roles import Principal, Role

log = logging.getLogger("crmscore.access")

#: Default keys file, relative to the working directory (used when it exists and $CRMSCORE_KEYS_FILE is unset).
DEFAULT_KEYS_FILE = Path("configs/keys.yaml")
#: Role of the shared ``CRMSCORE_API_KEYS`` keys (the compatibility path).
SHARED_KEY_ROLE: Role = "admin"
_KEY_RE = re.compile(rb"^crm_([0-9a-f]{8})_([A-Za-z0-9_-]{20,200})$")
_DUMMY_SALT = bytes(16)


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the file and the entry."""


class KeyEntry(BaseModel):
    """One key of the keys file: the principal it stands for and the salted hash of the key."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[0-9a-f]{8}$", description="public key id: the 8 hex digits after 'crm_'")
    name: str = Field(min_length=1, max_length=100, description="principal name (an employee or a system)")
    role: Role = Field(description="admin, manager, sales, analyst or integration")
    team: str | None = Field(default=None, description="team id (a manager sees the customers of this team)")
    owner_id: str | None = Field(default=None, description="owner id of a sales rep (sees the customers it owns)")
    salt: str = Field(pattern=r"^[0-9a-f]{32}$", description="random salt, hex")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA256(salt, key), hex")
    created_at: datetime | None = Field(default=None, description="when the key was made")
    expires_at: datetime | None = Field(default=None, description="the key is refused from this time on")
    revoked_at: datetime | None = Field(default=None, description="the key is refused from this time on")

    def principal(self) -> Principal:
        """The principal this key stands for."""
        return Principal(self.name, self.role, self.team, self.owner_id, "keys file")

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked`` at ``now`` (aware, UTC)."""
        if self.revoked_at is not None and _aware(self.revoked_at) <= now:
            return "revoked"
        if self.expires_at is not None and _aware(self.expires_at) <= now:
            return "expired"
        return "active"


class KeysFile(BaseModel):
    """The whole keys file."""

    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def hash_key(salt: bytes, key: bytes) -> bytes:
    """``HMAC-SHA256(salt, key)``."""
    return hmac.new(salt, key, hashlib.sha256).digest()


def new_key() -> tuple[str, str]:
    """A fresh key and its id: ``("crm_<id>_<secret>", id)``."""
    kid = secrets.token_hex(4)
    return f"crm_{kid}_{secrets.token_urlsafe(32)}", kid


def keys_file_path() -> Path | None:
    """``$CRMSCORE_KEYS_FILE``, else ``configs/keys.yaml`` when it exists, else None."""
    env = os.environ.get("CRMSCORE_KEYS_FILE")
    if env:
        return Path(env)
    return DEFAULT_KEYS_FILE if DEFAULT_KEYS_FILE.is_file() else None


def read_keys_file(path: str | Path) -> KeysFile:
    """Parse and validate a keys file (a missing or empty file has no keys)."""
    from features.config import ConfigError, read_yaml_mapping

    p = Path(path)
    if not p.is_file() or not p.read_text(encoding="utf-8").strip():
        return KeysFile()
    try:
        raw = read_yaml_mapping(p)
    except ConfigError as e:
        raise KeysFileError(message_of(e) or str(e)) from None
    try:
        kf = KeysFile.model_validate(raw)
    except ValidationError as e:
        first = e.errors(include_input=False)[0]
        where = ".".join(str(x) for x in first["loc"])
        raise KeysFileError(M_("{path}: {where}: {msg}", path=p, where=where, msg=first['msg'])) from None
    seen: set[str] = set()
    for i, k in enumerate(kf.keys):
        if k.id in seen:
            raise KeysFileError(M_("{path}: keys.{index}.id: the id {id} appears twice", path=p, index=i, id=k.id))
        seen.add(k.id)
    return kf


def write_keys_file(path: str | Path, kf: KeysFile) -> Path:
    """Write the keys file atomically (a reader never sees half a file)."""
    import yaml

    from features.io import write_text_atomic

    header = (
        "# crm-scoring API keys (docs/access.md): salted hashes only, never a key. Managed with\n"
        "# `crmscore keys add|revoke|list`; edits take effect on the next request, without a restart.\n"
    )
    body = yaml.safe_dump(kf.model_dump(mode="json", exclude_none=True), allow_unicode=True, sort_keys=False)
    return write_text_atomic(path, header + body)


def add_key(
    path: str | Path, name: str, role: Role, team: str | None = None, owner_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, KeyEntry]:
    """Add a key for a principal to the keys file; returns (the key, shown once; its entry)."""
    p = Path(path)
    kf = read_keys_file(p)
    if role == "manager" and not team:
        raise KeysFileError(M_("--team: a manager needs a team (they see the customers of their team)"))
    if role == "sales" and not owner_id:
        raise KeysFileError(M_("--owner-id: a sales rep needs an owner id (they see the customers they own)"))
    taken = {k.id for k in kf.keys}
    key, kid = new_key()
    while kid in taken:
        key, kid = new_key()
    salt = secrets.token_bytes(16)
    entry = KeyEntry(
        id=kid, name=name, role=role, team=team, owner_id=owner_id, salt=salt.hex(),
        hash=hash_key(salt, key.encode()).hex(), created_at=datetime.now(UTC).replace(microsecond=0),
        expires_at=_aware(expires_at) if expires_at is not None else None,
    )
    kf.keys.append(entry)
    write_keys_file(p, kf)
    return key, entry


def revoke_key(path: str | Path, who: str) -> list[KeyEntry]:
    """Revoke the active keys whose id or principal name is ``who``; the entries revoked (none: an error)."""
    p = Path(path)
    kf = read_keys_file(p)
    now = datetime.now(UTC).replace(microsecond=0)
    hit = [k for k in kf.keys if who in (k.id, k.name) and k.state(now) == "active"]
    if not hit:
        raise KeysFileError(M_("{path}: no active key with the id or name {who!r}", path=p, who=who))
    for k in hit:
        k.revoked_at = now
    write_keys_file(p, kf)
    return hit


@dataclass
class _Loaded:
    signature: tuple[int, int, int] | None
    by_id: dict[bytes, KeyEntry]


class KeyStore:
    """The keys file held in memory and reloaded when the file changes (checked on every :meth:`check`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._loaded = _Loaded(None, {})
        self.error: str | None = None
        self._refresh()

    def _signature(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self) -> None:
        sig = self._signature()
        if sig == self._loaded.signature:
            return
        if sig is None:
            self._loaded = _Loaded(None, {})
            return
        assert self.path is not None
        try:
            kf = read_keys_file(self.path)
        except (KeysFileError, OSError) as e:
            self.error = str(e)[:300]
            log.error("keys file not reloaded, the previous keys stay in force: %s", self.error)
            self._loaded = _Loaded(sig, self._loaded.by_id)
            return
        self.error = None
        self._loaded = _Loaded(sig, {k.id.encode(): k for k in kf.keys})
        log.info("keys file %s loaded: %d key(s)", self.path, len(kf.keys))

    def __len__(self) -> int:
        self._refresh()
        return len(self._loaded.by_id)

    def check(self, token: bytes, now: datetime | None = None) -> Principal | str | None:
        """The principal of ``token``; a reason string when the key is known but expired or revoked; None when
        it is not a key of this file. Constant time in the secret."""
        self._refresh()
        m = _KEY_RE.match(token)
        entry = self._loaded.by_id.get(m.group(1)) if m else None
        salt = bytes.fromhex(entry.salt) if entry is not None else _DUMMY_SALT
        expected = bytes.fromhex(entry.hash) if entry is not None else bytes(32)
        ok = hmac.compare_digest(hash_key(salt, token), expected)
        if entry is None or not ok:
            return None
        state = entry.state(now or datetime.now(UTC))
        if state != "active":
            return M_("API key revoked") if state == "revoked" else M_("API key expired")
        return entry.principal()


class Authenticator:
    """Turns a bearer token into a :class:`Principal`: the keys file first, then the shared env keys."""

    def __init__(self, store: KeyStore, shared: frozenset[str]) -> None:
        self.store = store
        self.shared = [k.encode() for k in shared]

    @classmethod
    def from_env(cls) -> Authenticator:
        """The keys file of :func:`keys_file_path` and the shared keys of ``serving.settings.load_api_keys``."""
        from serving.settings import load_api_keys

        return cls(KeyStore(keys_file_path()), load_api_keys())

    def configured(self) -> bool:
        """Whether any key exists (a server without keys refuses every protected call)."""
        return bool(self.shared) or len(self.store) > 0

    def authenticate(self, token: bytes) -> Principal | str:
        """The principal of ``token``, or why it is refused (the text of the 401)."""
        found = self.store.check(token)
        if isinstance(found, Principal):
            return found
        ok = False
        for key in self.shared:  # compare with every key: time does not depend on which one matches
            ok |= hmac.compare_digest(token, key)
        if ok:
            return Principal("shared-key", SHARED_KEY_ROLE, source="CRMSCORE_API_KEYS")
        return found or M_("invalid API key")


def principal_from_env(env_var: str = "CRMSCORE_KEY") -> Principal:
    """Who a CLI command runs as: the principal of the key in ``$CRMSCORE_KEY`` (checked against the keys
    file), else the local operator (role ``admin``: whoever runs the command already reads the files)."""
    token = os.environ.get(env_var)
    if not token:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return Principal(f"local:{user}", "admin", source="local")
    found = Authenticator.from_env().authenticate(token.strip().encode())
    if isinstance(found, str):
        raise PermissionError(M_("{env_var}: {found}", env_var=env_var, found=found))
    return found


def describe(entry: KeyEntry, now: datetime | None = None) -> dict[str, Any]:
    """One key as `crmscore keys list` shows it (never the hash or the salt)."""
    now = now or datetime.now(UTC)
    return {
        "id": entry.id, "name": entry.name, "role": entry.role, "team": entry.team, "owner_id": entry.owner_id,
        "state": entry.state(now),
        "created_at": entry.created_at.isoformat() if entry.created_at else None,
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
        "revoked_at": entry.revoked_at.isoformat() if entry.revoked_at else None,
    }
