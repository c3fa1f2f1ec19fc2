CREATE TABLE events (
    event_id TEXT NOT NULL,
    site_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    referrer TEXT NOT NULL,
    referrer_source TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    utm_source TEXT NOT NULL,
    utm_medium TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    browser TEXT NOT NULL,
    os TEXT NOT NULL,
    device TEXT NOT NULL,
    country TEXT NOT NULL,
    screen_width INTEGER NOT NULL,
    screen_height INTEGER NOT NULL,
    props TEXT NOT NULL
);
CREATE INDEX events_site_ts ON events(site_id, ts);
CREATE TABLE rollup_minute (
    site_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    path TEXT NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (site_id, bucket, path)
) WITHOUT ROWID;
CREATE TABLE rollup_hour (
    site_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    path TEXT NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (site_id, bucket, path)
) WITHOUT ROWID;
CREATE TABLE custom_events_hour (
    site_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (site_id, bucket, name)
) WITHOUT ROWID;
-- The last transport offset applied per (topic, partition): a redelivered batch is skipped.
CREATE TABLE applied_positions (
    topic TEXT NOT NULL,
    partition TEXT NOT NULL,
    last_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID
