-- One row per visit, kept by every flush (visits.py); events say which visit they belong to.
-- Stats read these instead of rebuilding visits from raw events per request.
ALTER TABLE events ADD COLUMN visit_id INTEGER NOT NULL DEFAULT 0;
CREATE TABLE visits (
    visit_id INTEGER NOT NULL,
    site_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    first_ts REAL NOT NULL,
    last_ts REAL NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    entry_page TEXT NOT NULL,
    exit_page TEXT NOT NULL,
    source TEXT NOT NULL,
    referrer TEXT NOT NULL,
    utm_source TEXT NOT NULL,
    utm_medium TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    utm_term TEXT NOT NULL,
    utm_content TEXT NOT NULL,
    country TEXT NOT NULL,
    browser TEXT NOT NULL,
    os TEXT NOT NULL,
    device TEXT NOT NULL,
    screen TEXT NOT NULL,
    -- Clustered by start time: a range's visits are read in one sequential pass.
    PRIMARY KEY (site_id, first_ts, visit_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX visits_id ON visits(visit_id);
CREATE INDEX visits_session ON visits(site_id, session_id, last_ts);

-- Backfill: a visit's id is its first event's rowid (flushes use a hash; both are unique).
CREATE TEMP TABLE visit_of (rid INTEGER PRIMARY KEY, visit_id INTEGER NOT NULL);
INSERT INTO visit_of
WITH ordered AS (
    SELECT rowid AS rid, site_id, session_id, ts,
           LAG(ts) OVER (PARTITION BY site_id, session_id ORDER BY ts, rowid) AS prev_ts
    FROM events
),
numbered AS (
    SELECT rid, site_id, session_id, ts,
           SUM(prev_ts IS NULL OR ts - prev_ts > 1800) OVER (PARTITION BY site_id, session_id
               ORDER BY ts, rid ROWS UNBOUNDED PRECEDING) AS n
    FROM ordered
)
SELECT rid, FIRST_VALUE(rid) OVER (PARTITION BY site_id, session_id, n ORDER BY ts, rid)
FROM numbered;
UPDATE events SET visit_id = visit_of.visit_id FROM visit_of WHERE visit_of.rid = events.rowid;
INSERT INTO visits
SELECT a.visit_id, f.site_id, f.session_id, f.visitor_id, a.first_ts, a.last_ts, a.pageviews,
       a.custom,
       coalesce((SELECT e.path FROM events e WHERE e.site_id = f.site_id
                 AND e.session_id = f.session_id AND e.ts >= a.first_ts AND e.ts <= a.last_ts
                 AND e.name = 'pageview' ORDER BY e.ts, e.rowid LIMIT 1), ''),
       coalesce((SELECT e.path FROM events e WHERE e.site_id = f.site_id
                 AND e.session_id = f.session_id AND e.ts >= a.first_ts AND e.ts <= a.last_ts
                 AND e.name = 'pageview' ORDER BY e.ts DESC, e.rowid LIMIT 1), ''),
       f.referrer_source, f.referrer, f.utm_source, f.utm_medium, f.utm_campaign, f.utm_term,
       f.utm_content, f.country, f.browser, f.os, f.device,
       CASE WHEN f.screen_width = 0 THEN '' WHEN f.screen_width < 576 THEN 'Mobile'
            WHEN f.screen_width < 992 THEN 'Tablet' WHEN f.screen_width < 1440 THEN 'Laptop'
            ELSE 'Desktop' END
FROM (SELECT visit_id, min(ts) AS first_ts, max(ts) AS last_ts,
             sum(name = 'pageview') AS pageviews, sum(name <> 'pageview') AS custom
      FROM events GROUP BY visit_id) AS a
JOIN events f ON f.rowid = a.visit_id;
DROP TABLE visit_of
