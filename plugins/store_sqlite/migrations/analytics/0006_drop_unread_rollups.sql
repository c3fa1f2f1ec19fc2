-- The minute/hour rollups and hourly custom-event counts were written by every flush and
-- read by nothing: the raw events they summed are kept, and stats come from them, the visits
-- and the day rollups. Dropping them takes their upserts out of every flush.
DROP TABLE IF EXISTS rollup_minute;
DROP TABLE IF EXISTS rollup_hour;
DROP TABLE IF EXISTS custom_events_hour
