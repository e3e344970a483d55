-- The bureau's records: what came in, what it became, who was told, and every change of state.

-- Counters (guichets) of the registry, and the portal users who deposit for them.
CREATE TABLE guichets (
    numero          text PRIMARY KEY,
    departement     text NOT NULL,
    email_referent  text NOT NULL
);

CREATE TABLE portal_users (
    id            bigserial PRIMARY KEY,
    guichet       text NOT NULL REFERENCES guichets(numero),
    email         text NOT NULL UNIQUE,
    -- SHA-256 of the API token; the token itself is shown once, at creation.
    token_sha256  bytea NOT NULL UNIQUE,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The registry's requests (one JSON record each, as in the registry snapshot contract).
CREATE TABLE registry_demandes (
    numero_unique  text PRIMARY KEY,
    record         jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Filing-plan versions; the current one classifies new mailings.
CREATE TABLE plan_versions (
    version    text PRIMARY KEY,
    body       text NOT NULL,
    current    boolean NOT NULL DEFAULT false,
    loaded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX plan_versions_one_current ON plan_versions (current) WHERE current;

-- A mailing: one scanner batch, one e-mail's attachments or one portal deposit. Its id is a
-- digest of its content, so the same file delivered twice is the same mailing.
CREATE TABLE mailings (
    id              text PRIMARY KEY,
    channel         text NOT NULL CHECK (channel IN ('paper', 'portal', 'mail')),
    source          text NOT NULL,
    received_at     timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'processing', 'done', 'failed')),
    numero_unique   text,
    notify          text,
    portal_user     bigint REFERENCES portal_users(id),
    files           jsonb NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    outcome         text CHECK (outcome IN ('accepted', 'partial', 'rejected')),
    pages           integer,
    report          jsonb,
    raw_expires_at  timestamptz,
    raw_deleted_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX mailings_open ON mailings (due_at) WHERE status <> 'done';

-- Every page's one fate.
CREATE TABLE pages (
    mailing_id  text NOT NULL REFERENCES mailings(id),
    index       integer NOT NULL,
    source      text NOT NULL,
    role        text NOT NULL,
    piece_id    text,
    reason      text,
    detail      text,
    PRIMARY KEY (mailing_id, index)
);

CREATE TABLE requests (
    mailing_id     text NOT NULL REFERENCES mailings(id),
    ordinal        integer NOT NULL,
    numero_unique  text,
    status         text NOT NULL,
    reason         text,
    notice         text,
    PRIMARY KEY (mailing_id, ordinal)
);

-- The registry of filed pieces: this table plus the objects under `key` in S3.
CREATE TABLE pieces (
    id             text PRIMARY KEY,
    mailing_id     text NOT NULL REFERENCES mailings(id),
    numero_unique  text,
    categorie      text,
    type_code      text,
    confidence     real NOT NULL,
    sensible       boolean NOT NULL,
    status         text NOT NULL,
    reason         text,
    key            text,
    bytes          bigint,
    plan_version   text NOT NULL,
    evidence       jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pieces_by_request ON pieces (numero_unique);

-- Notices waiting to be sent (the outbox); `sent` only once the SMTP server accepted them.
CREATE TABLE notices (
    id          bigserial PRIMARY KEY,
    mailing_id  text NOT NULL REFERENCES mailings(id),
    name        text NOT NULL,
    recipients  text[] NOT NULL,
    sender      text NOT NULL,
    message     bytea NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    UNIQUE (mailing_id, name)
);
CREATE INDEX notices_pending ON notices (created_at) WHERE status = 'pending';

-- Messages a stage gave up on, with why.
CREATE TABLE dead_letters (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    stage     text NOT NULL,
    subject   text,
    attempts  integer NOT NULL,
    reason    text NOT NULL,
    payload   bytea NOT NULL
);

-- Who did what to what, and when: every change of state.
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    subject     text NOT NULL,
    action      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_by_subject ON audit_events (subject, at);

-- Time left before each open mailing's due date, for supervisors.
CREATE VIEW sla AS
SELECT id, channel, status, received_at, due_at,
       due_at - now() AS remaining,
       due_at < now() AS late
FROM mailings
WHERE status <> 'done';
