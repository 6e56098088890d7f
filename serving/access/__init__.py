"""Who may see what: principals and roles from a keys file, scoped access, PII masking, the audit trail, erasure.

What lives here:

- ``roles``: the five roles, the permission matrix over every endpoint and CLI export, the :class:`Principal`
  a request or a command runs as, and the customer scope (team, owner) of each role;
- ``keys``: the keys file (``configs/keys.yaml`` or ``$CRMSCORE_KEYS_FILE``): salted key hashes, expiry,
  constant-time checks, hot reload; and the compatibility path for the shared ``CRMSCORE_API_KEYS`` keys;
- ``masking``: phone, e-mail, address and name masking for roles without PII access (records, frames, Arrow);
- ``audit``: the hash-chained, append-only JSONL audit trail (write, verify, query);
- ``erasure``: ``crmscore forget``, the right to be forgotten (data dir, drift records, exports, tombstone).

The permission matrix is documented in docs/access.md. May import ``features`` and ``serving.settings``;
never the service, the CLI or the batch package.
"""
