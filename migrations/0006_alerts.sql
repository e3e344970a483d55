-- Alerts to the bureau's own people: supervisors when mailings become at risk of missing their
-- due date or late, operators when a counter opens an incident. An outbox like the notices'
-- (an alert counts as sent only once the SMTP server accepted it), apart from them: an alert
-- may tell of several mailings, or of none.
CREATE TABLE alerts (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('mailings', 'incident')),
    recipients  text[] NOT NULL,
    sender      text NOT NULL,
    message     bytea NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX alerts_pending ON alerts (created_at) WHERE status = 'pending';

-- What each alert told of: 'mailing:<id>:at_risk', 'mailing:<id>:late' or 'incident:<id>'. The
-- key is what makes an alert once per mailing and state, once per incident.
CREATE TABLE alert_subjects (
    subject   text PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts(id)
);
