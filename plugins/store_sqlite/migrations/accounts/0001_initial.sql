CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL UNIQUE,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL
);
CREATE TABLE memberships (
    site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    PRIMARY KEY (site_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_digest TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE login_sessions (
    token_digest TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE visitor_salts (
    day TEXT PRIMARY KEY,
    salt BLOB NOT NULL
);
-- Bumped by triggers so the ingest's domain cache can notice changes cheaply.
CREATE TABLE sites_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO sites_version VALUES (1, 0);
CREATE TRIGGER sites_insert AFTER INSERT ON sites BEGIN
    UPDATE sites_version SET version = version + 1;
END;
CREATE TRIGGER sites_update AFTER UPDATE ON sites BEGIN
    UPDATE sites_version SET version = version + 1;
END;
CREATE TRIGGER sites_delete AFTER DELETE ON sites BEGIN
    UPDATE sites_version SET version = version + 1;
END
