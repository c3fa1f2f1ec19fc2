-- Visit updates become HOT (heap-only): each flush updates the visits it extended, and an
-- update that changes no indexed column and finds room on its page writes no index entry.
-- visits_open indexed last_ts, which every extension changes, so every update added an
-- entry to all three indexes of visits. Open visits are now indexed by their start, which
-- an extension leaves alone (only a straggler before the first event moves it); closing
-- bounds its scan with first_ts < cutoff, implied by last_ts < cutoff.
-- The new index is built first: CREATE INDEX lets reads of visits (dashboards) go on
-- while it scans the table (writes wait); DROP INDEX blocks reads too, so it comes last and
-- holds that lock only until the migration commits.
CREATE INDEX visits_open_start ON visits (site_id, first_ts) WHERE NOT closed;
DROP INDEX visits_open;
ALTER INDEX visits_open_start RENAME TO visits_open;
-- Room on each page for the updated versions of its visits (existing full pages keep
-- their rows; pages filled from now on leave a quarter free).
ALTER TABLE visits SET (fillfactor = 75);
