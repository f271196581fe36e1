-- Where the events of a log came from when it was made by `nsm import` from an incident
-- bundle: one row per fact of the bundle's header (source host and file, export time, the
-- filter, the positions included, whether the bundle was whole or cut). Derived from an
-- import; absent on a node's own log (the table is there, empty). `nsm verify` reads it: a
-- log imported from a cut bundle has holes in its positions by construction.
CREATE TABLE log_meta (
    -- The fact's name, e.g. 'source_host', 'exported_at', 'whole', 'first_position'.
    key     TEXT    PRIMARY KEY,
    -- Its value as text: a string as it is, anything else (numbers, true/false, lists,
    -- objects) as JSON.
    value   TEXT    NOT NULL
) STRICT;
