-- The sample endpoint's IPAM log (`nsm endpoint --db`): one append-only table in a file of
-- its own, never in a node's event log. Written by nsm-log's `ipam` module.
--
-- An 'allocated' row gives a connection its pair of addresses; a later 'allocated' row for
-- the same connection (a refresh that moved `expires_at`) replaces it; a 'released' row
-- ends it. The current allocations are the fold of the rows in position order. Rows are
-- never updated or deleted.
--
-- IF NOT EXISTS: files written before this migration existed already hold the same table.
CREATE TABLE IF NOT EXISTS ipam_log (
    position      INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at   TEXT NOT NULL,   -- RFC 3339, UTC, microseconds
    kind          TEXT NOT NULL CHECK (kind IN ('allocated', 'released')),
    connection_id TEXT NOT NULL,   -- the endpoint's own path-segment id
    client_addr   TEXT,            -- bare address, e.g. 169.254.0.2
    endpoint_addr TEXT,            -- bare address, e.g. 169.254.0.1
    cause         TEXT,            -- on 'released': 'close' or 'expired'
    expires_at    TEXT             -- on 'allocated': the client's lifetime end, RFC 3339
);
