-- How many parts of a dirty day's recount are done (daily.PARTS): flushes spread a recount
-- over several transactions; marking the day again starts it over.
ALTER TABLE dirty_days ADD COLUMN done INTEGER NOT NULL DEFAULT 0
