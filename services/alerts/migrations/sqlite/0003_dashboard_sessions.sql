-- +goose Up
-- Dashboard logins (auth.go, docs/design/alerts-sessions.md). session_key is a
-- keyed SHA-256 of the random id in the cookie, never the id itself. A
-- session ends at idle_until unless used, and at expires_at in any case.
-- Times are UTC text with nine fractional digits, so text order is time order.
CREATE TABLE dashboard_sessions (
    session_key BLOB PRIMARY KEY CHECK (length(session_key) = 32),
    created_at  TEXT NOT NULL,
    idle_until  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);

-- +goose Down
DROP TABLE dashboard_sessions;
