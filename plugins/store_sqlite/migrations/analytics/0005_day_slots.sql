-- Per UTC day and quarter hour: the events, the pageviews, and the visitors whose first or
-- last event of the day falls in it. A time series bucket that cuts UTC days at a local
-- midnight adds up a day's tail and the next day's head from these (whole_days.py).
CREATE TABLE day_slots (
    site_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    slot INTEGER NOT NULL,  -- quarter hours since the day's start, 0..95
    events INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    arriving INTEGER NOT NULL,
    leaving INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, slot)
) WITHOUT ROWID;
-- Backfill: the store's open() recounts dirty days.
INSERT OR IGNORE INTO dirty_days SELECT site_id, day FROM day_totals
