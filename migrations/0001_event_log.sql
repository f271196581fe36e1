-- The nsm-rs event log. This schema is a public contract, documented column by column in
-- README.md ("The event log"). Never edit an applied migration: add a new one.

-- Every change to every vWire (and, later, registry entry) is one row, appended, never updated.
CREATE TABLE events (
    -- Global, gap-free order of the whole log. AUTOINCREMENT so a position is never reused,
    -- even after the newest rows were deleted by hand.
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The event's own id (UUID text); the idempotency key of an append, forever.
    event_id        TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    -- The stream the event belongs to, e.g. 'vwire-<uuid>'.
    stream          TEXT    NOT NULL CHECK (length(stream) BETWEEN 1 AND 255),
    -- 1, 2, 3, ... within the stream, contiguous.
    version         INTEGER NOT NULL CHECK (version >= 1),
    -- Past-tense event name, e.g. 'Requested', 'Established'.
    event_type      TEXT    NOT NULL,
    -- Version of the payload's shape for this event_type; older ones are upcast on read.
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
    -- When the journal committed the event: RFC 3339, UTC, microseconds, e.g.
    -- '2026-11-28T18:45:17.123456Z'. Never decreases along position.
    recorded_at     TEXT    NOT NULL,
    -- Trace id of the call that caused the event (W3C, 32 hex digits), if any.
    correlation_id  TEXT,
    -- Id of what directly caused the event (the request's span id, or another event's id).
    causation_id    TEXT,
    -- The event body, JSON.
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    UNIQUE (stream, version)
) STRICT;

-- One row per vWire that is not terminal, written in the same transaction as its events, so a
-- node can start without folding the whole log. Derived data: `nsm verify` rebuilds it from
-- `events` and compares.
CREATE TABLE live_vwires (
    stream      TEXT    PRIMARY KEY,
    -- The stream version the row reflects.
    version     INTEGER NOT NULL CHECK (version >= 1),
    -- 'requested' or 'established'.
    status      TEXT    NOT NULL,
    -- The vWire's deadline (RFC 3339, UTC): it is expired if not refreshed by then.
    expires_at  TEXT    NOT NULL,
    -- The folded vWire state, JSON.
    state       TEXT    NOT NULL CHECK (json_valid(state))
) STRICT;
