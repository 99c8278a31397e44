-- API keys of this region's clients (services/api/http/auth.ts; created, listed and revoked with
-- `hothot keys`). A key is `hh_<id>_<secret>`: the id finds the row, only SHA-256 of the secret is
-- kept, so this table never holds what a client sends. Keys are per region database: a client that
-- uses several regions needs its key created in each (`hothot keys create --all-regions` in a lab).
CREATE TABLE api_key (
  id          text        PRIMARY KEY,                 -- public: 16 lower-case base32 characters
  secret_hash bytea       NOT NULL,                    -- SHA-256 of the secret
  scopes      text[]      NOT NULL,                    -- read, write, admin
  collections text[],                                  -- NULL: every collection
  name        text        NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,                             -- set by `hothot keys revoke`; the row stays
  CONSTRAINT api_key_id_format CHECK (id ~ '^[a-z2-7]{16}$'),
  CONSTRAINT api_key_hash_length CHECK (octet_length(secret_hash) = 32),
  CONSTRAINT api_key_scopes_known CHECK (
    cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'admin']::text[]
  ),
  CONSTRAINT api_key_collections_nonempty CHECK (collections IS NULL OR cardinality(collections) > 0)
);
