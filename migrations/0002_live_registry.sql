-- One row per registered Network Service and Network Service Endpoint, written in the same
-- transaction as their events, so the registry starts without folding every refresh an
-- endpoint ever made. Derived data, rebuilt from `events` by the registry's projection.
CREATE TABLE live_registry (
    -- 'ns-<name>' for a Network Service, 'nse-<name>' for an endpoint.
    stream      TEXT    PRIMARY KEY,
    -- The stream version the row reflects.
    version     INTEGER NOT NULL CHECK (version >= 1),
    -- Endpoints: the registration's deadline (RFC 3339, UTC). Services: NULL (never expire).
    expires_at  TEXT,
    -- The folded registration, JSON.
    state       TEXT    NOT NULL CHECK (json_valid(state))
) STRICT;
