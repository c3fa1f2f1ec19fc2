ALTER TABLE events ADD COLUMN referrer_medium TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_term TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_content TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN region TEXT NOT NULL DEFAULT '';
-- Visits are rebuilt per session at query time; this index serves that ordering.
CREATE INDEX events_site_session_ts ON events(site_id, session_id, ts)
