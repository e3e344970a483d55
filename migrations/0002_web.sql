-- The people's side: accounts with roles, browser sessions, incident reports, operators'
-- review decisions and supervisors' priorities.

-- Accounts: the portal users of the API grow into nominative accounts of three roles. A
-- counter's account belongs to its counter; operators and supervisors belong to the bureau.
ALTER TABLE portal_users
    ADD COLUMN role text NOT NULL DEFAULT 'counter' CHECK (role IN ('counter', 'operator', 'supervisor')),
    ADD COLUMN display_name text NOT NULL DEFAULT '',
    -- PHC string of an argon2id hash; NULL = no browser login (API token only).
    ADD COLUMN password_hash text,
    -- The "sensitive" profile may open pieces the filing plan marks sensitive.
    ADD COLUMN sensitive boolean NOT NULL DEFAULT false,
    ADD COLUMN failed_logins integer NOT NULL DEFAULT 0,
    ADD COLUMN locked_until timestamptz,
    ALTER COLUMN guichet DROP NOT NULL,
    ALTER COLUMN token_sha256 DROP NOT NULL,
    ADD CONSTRAINT counter_has_guichet CHECK (role <> 'counter' OR guichet IS NOT NULL);

-- Browser sessions: the cookie carries a random token, the table its SHA-256 (a stolen
-- database does not give sessions away), with the session's CSRF token.
CREATE TABLE web_sessions (
    token_sha256  bytea PRIMARY KEY,
    account       bigint NOT NULL REFERENCES portal_users(id),
    csrf          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- Which counter a mailing belongs to (portal deposits and counters' paper mailings), so a
-- counter's pages list its own without joining through the uploader.
ALTER TABLE mailings
    ADD COLUMN guichet text,
    -- Raised by a supervisor: the mailing jumps the processing queue.
    ADD COLUMN priority integer NOT NULL DEFAULT 0,
    -- When its last processing attempt started: pages over processing time is the bureau's
    -- measured speed, which the deadline forecast uses.
    ADD COLUMN started_at timestamptz;
UPDATE mailings m SET guichet = u.guichet FROM portal_users u WHERE u.id = m.portal_user;
CREATE INDEX mailings_by_guichet ON mailings (guichet, received_at);

-- Operators' decisions on pieces the classifier was unsure of.
ALTER TABLE pieces
    ADD COLUMN decided_by text,
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN pages integer NOT NULL DEFAULT 1;
CREATE INDEX pieces_review ON pieces (created_at) WHERE status = 'review';
CREATE INDEX pieces_by_day ON pieces (created_at);
CREATE INDEX mailings_by_reception ON mailings (received_at);
CREATE INDEX mailings_by_completion ON mailings (done_at);

-- Fiches incident: a counter reports a problem, the bureau follows it up.
CREATE TABLE incidents (
    id             bigserial PRIMARY KEY,
    guichet        text NOT NULL,
    opened_by      bigint NOT NULL REFERENCES portal_users(id),
    kind           text NOT NULL CHECK (kind IN ('piece_not_processed', 'deadline_missed', 'misfiled_piece', 'notice_not_received')),
    mailing_id     text REFERENCES mailings(id),
    numero_unique  text,
    description    text NOT NULL,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'resolved')),
    answer         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_by_guichet ON incidents (guichet, created_at);

-- What an operator did with a message a stage gave up on.
ALTER TABLE dead_letters
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN resolved_by text,
    ADD COLUMN resolution text CHECK (resolution IN ('retried', 'rejected'));
