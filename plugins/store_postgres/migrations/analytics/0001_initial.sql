-- Analytics: raw events and visits (kept for `postgres.retention_days`), rollups (kept
-- forever) and the transport offsets applied. Times are epoch seconds (UTC).

-- Raw events, one partition per calendar month (UTC) of `ts`, created as events arrive;
-- retention drops whole partitions. Each event carries the visit it belongs to.
CREATE TABLE events (
    site_id bigint NOT NULL,
    ts double precision NOT NULL,
    visit_id bigint NOT NULL,
    event_id text NOT NULL,
    name text NOT NULL,
    path text NOT NULL,
    visitor_id text NOT NULL,
    session_id text NOT NULL,
    referrer text NOT NULL,
    referrer_source text NOT NULL,
    referrer_medium text NOT NULL,
    url text NOT NULL,
    title text NOT NULL,
    utm_source text NOT NULL,
    utm_medium text NOT NULL,
    utm_campaign text NOT NULL,
    utm_term text NOT NULL,
    utm_content text NOT NULL,
    browser text NOT NULL,
    os text NOT NULL,
    device text NOT NULL,
    country text NOT NULL,
    region text NOT NULL,
    screen_width integer NOT NULL,
    screen_height integer NOT NULL,
    props jsonb NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX events_site_ts ON events (site_id, ts);
-- `page==/x` filters and custom-event properties find their rows without a range scan.
CREATE INDEX events_site_path ON events (site_id, path, ts);
CREATE INDEX events_site_custom ON events (site_id, name, ts) WHERE name <> 'pageview';

-- One row per visit (a session's run of events with no gap over 30 minutes), maintained at
-- each flush. Its attributes are its first event's; entry/exit are its first/last pageview.
-- A visit is `closed` once its site's events have moved 31 minutes past its last one; it is
-- then added to rollup_visit. Open visits are read from here.
CREATE TABLE visits (
    visit_id bigint PRIMARY KEY,
    site_id bigint NOT NULL,
    session_id text NOT NULL,
    visitor_id text NOT NULL,
    first_ts double precision NOT NULL,
    last_ts double precision NOT NULL,
    pageviews integer NOT NULL,
    events integer NOT NULL,
    entry_ts double precision,
    entry_page text NOT NULL,
    exit_ts double precision,
    exit_page text NOT NULL,
    source text NOT NULL,
    referrer text NOT NULL,
    utm_source text NOT NULL,
    utm_medium text NOT NULL,
    utm_campaign text NOT NULL,
    utm_term text NOT NULL,
    utm_content text NOT NULL,
    country text NOT NULL,
    browser text NOT NULL,
    os text NOT NULL,
    device text NOT NULL,
    screen text NOT NULL,
    closed boolean NOT NULL DEFAULT false
);
CREATE INDEX visits_site_start ON visits (site_id, first_ts);
CREATE INDEX visits_open_session ON visits (site_id, session_id, last_ts) WHERE NOT closed;
-- Open visits are few (the last half hour's): closing scans them by last event.
CREATE INDEX visits_open ON visits (site_id, last_ts) WHERE NOT closed;

-- Rollups per hour (width 3600) and per UTC day (width 86400); `bucket` is the start.
-- A range is answered from whole days, whole hours at its edges, and raw rows for the
-- partial hours (see spans.py).
CREATE TABLE rollup_site (
    site_id bigint NOT NULL,
    width integer NOT NULL CHECK (width IN (3600, 86400)),
    bucket bigint NOT NULL,
    pageviews bigint NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (site_id, width, bucket)
);
CREATE TABLE rollup_page (
    site_id bigint NOT NULL,
    width integer NOT NULL CHECK (width IN (3600, 86400)),
    bucket bigint NOT NULL,
    path text NOT NULL,
    pageviews bigint NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (site_id, width, bucket, path)
);
CREATE TABLE rollup_event (
    site_id bigint NOT NULL,
    width integer NOT NULL CHECK (width IN (3600, 86400)),
    bucket bigint NOT NULL,
    name text NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (site_id, width, bucket, name)
);
-- The "key: value" props of custom events, per event name.
CREATE TABLE rollup_prop (
    site_id bigint NOT NULL,
    width integer NOT NULL CHECK (width IN (3600, 86400)),
    bucket bigint NOT NULL,
    name text NOT NULL,
    pair text NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (site_id, width, bucket, name, pair)
);
-- Breakdowns rank values by these sums before any sketch is read: index-only scans.
CREATE INDEX rollup_page_counts ON rollup_page (site_id, width, bucket)
    INCLUDE (path, pageviews, events);
-- Closed visits by the hour/day they started, per visit property and value ('*' = all).
CREATE TABLE rollup_visit (
    site_id bigint NOT NULL,
    property text NOT NULL,
    width integer NOT NULL CHECK (width IN (3600, 86400)),
    bucket bigint NOT NULL,
    value text NOT NULL,
    visits bigint NOT NULL,
    pageviews bigint NOT NULL,
    events bigint NOT NULL,
    bounces bigint NOT NULL,
    duration_s double precision NOT NULL,
    PRIMARY KEY (site_id, property, width, bucket, value)
);
CREATE INDEX rollup_visit_counts ON rollup_visit (site_id, property, width, bucket)
    INCLUDE (value, visits, pageviews, events);

-- The last transport offset applied per (topic, partition), written in the same
-- transaction as the rows: a redelivered batch finds its offsets here and changes nothing.
CREATE TABLE applied_positions (
    topic text NOT NULL,
    partition text NOT NULL,
    last_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The newest event time per site (the dashboard polls it; the watermark is the maximum).
CREATE TABLE latest_events (
    site_id bigint PRIMARY KEY,
    ts double precision NOT NULL
);
