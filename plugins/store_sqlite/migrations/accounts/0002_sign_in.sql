-- Sign-in beyond passwords: invitations, external identities, two-factor login, single-use
-- login challenges and failed-login throttling.

-- An admin's invitation of an email address to a site; the link carries a token kept here
-- only as a SHA-256 digest. One open invitation per (site, email): inviting again replaces it.
CREATE TABLE invitations (
    id INTEGER PRIMARY KEY,
    token_digest TEXT NOT NULL UNIQUE,
    site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    invited_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    accepted_at REAL,
    accepted_by INTEGER REFERENCES users(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX invitations_open ON invitations(site_id, email) WHERE accepted_at IS NULL;
CREATE INDEX invitations_email ON invitations(email);

-- An account at an outside provider (GitHub, Google) linked to a user.
CREATE TABLE identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user ON identities(user_id);

-- TOTP: the secret (sealed by the plugin, never stored in the clear), whether enrolment was
-- confirmed with a code, and the last time step used so a code cannot be replayed.
CREATE TABLE totp_secrets (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    confirmed_at REAL,
    last_step INTEGER NOT NULL DEFAULT 0
);

-- Single-use recovery codes, as SHA-256 digests.
CREATE TABLE recovery_codes (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_digest TEXT NOT NULL,
    used_at REAL,
    PRIMARY KEY (user_id, code_digest)
);

-- Short-lived single-use tokens between two steps of a login (OAuth state, the TOTP step),
-- by digest; the payload is the plugin's (JSON), opaque to the store.
CREATE TABLE login_challenges (
    token_digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    expires_at REAL NOT NULL
);

-- Failed logins, per throttling key ("account:<email>", "ip:<address>"); old rows are pruned.
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(key, at)
