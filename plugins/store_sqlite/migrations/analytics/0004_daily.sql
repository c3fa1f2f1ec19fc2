-- Per-UTC-day rollups for the whole days of unfiltered stats (daily.py, whole_days.py).
-- Visit columns count the visits starting that day; day_* columns the events of that day.
CREATE TABLE day_totals (
    site_id INTEGER NOT NULL,
    day INTEGER NOT NULL,  -- UTC midnight, epoch seconds
    visits INTEGER NOT NULL,
    visitors INTEGER NOT NULL,  -- distinct visitor ids of those visits
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    bounces INTEGER NOT NULL,
    duration REAL NOT NULL,  -- sum of the visits' durations
    day_events INTEGER NOT NULL,
    day_pageviews INTEGER NOT NULL,
    day_visitors INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
) WITHOUT ROWID;
-- property 'page' / 'event': the day's pageviews per path / custom events per name;
-- any other: a visit column, over the visits starting that day.
CREATE TABLE day_values (
    site_id INTEGER NOT NULL,
    property TEXT NOT NULL,
    day INTEGER NOT NULL,
    value TEXT NOT NULL,
    visitors INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (site_id, property, day, value)
) WITHOUT ROWID;
-- Days whose rollups are stale (a flush changed them); recounted by a later flush or open().
CREATE TABLE dirty_days (
    site_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
) WITHOUT ROWID;
-- The UTC days each visitor id appears on, and the pairs of days sharing one id.
CREATE TABLE visitor_days (
    site_id INTEGER NOT NULL,
    visitor_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (site_id, visitor_id, day)
) WITHOUT ROWID;
CREATE TABLE shared_days (
    site_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    other_day INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, other_day)
) WITHOUT ROWID;

-- Backfill: the id index and its shared days here; every day with data is dirty, so the
-- store's open() counts its rollups.
INSERT INTO visitor_days
SELECT DISTINCT site_id, visitor_id, CAST(ts / 86400 AS INTEGER) * 86400 FROM events;
INSERT INTO shared_days
SELECT a.site_id, a.day, b.day FROM visitor_days a JOIN visitor_days b
  ON b.site_id = a.site_id AND b.visitor_id = a.visitor_id AND b.day <> a.day
GROUP BY 1, 2, 3;
INSERT INTO dirty_days
SELECT site_id, CAST(ts / 86400 AS INTEGER) * 86400 FROM events
UNION
SELECT site_id, CAST(first_ts / 86400 AS INTEGER) * 86400 FROM visits
