-- A counter's registry look-ups are counted per account over the last hour (throttle).
CREATE INDEX audit_by_actor ON audit_events (actor, action, at);
