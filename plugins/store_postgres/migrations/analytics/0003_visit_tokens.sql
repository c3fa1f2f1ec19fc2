-- Each processor keeps the open visits of the sites it writes in memory (open_visits.py)
-- instead of looking every session up on every flush. A site's token changes with every
-- flush that writes its visits; a processor whose last token is no longer there knows that
-- someone else wrote (or deleted) the site since, and reads its open visits again. The
-- token rows are also locked for the flush, so two writers of one site take turns.
CREATE TABLE visit_tokens (
    site_id bigint PRIMARY KEY,
    token bigint NOT NULL
);
-- Only the per-session lookup that the in-memory open visits replace used this index;
-- reading a site's open visits uses visits_open.
DROP INDEX visits_open_session;
