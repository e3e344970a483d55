-- Messages taken from an IMAP mailbox, by the identity the server gives them (UIDVALIDITY and UID
-- of the mailbox). A message is recorded once stored (or refused), before it is moved out of the
-- mailbox: if the move is lost to a crash or an outage, the next round sees the UID here and only
-- moves it. (A crash between the store and this record is caught by the mailing's content
-- identity: the same message stored again is a duplicate, not a second mailing.)
CREATE TABLE imap_messages (
    -- account@host:port/mailbox
    mailbox text NOT NULL,
    uidvalidity bigint NOT NULL,
    uid bigint NOT NULL,
    -- The mailing it became; none for a message with no sender, filed as failed with no reply.
    mailing_id text REFERENCES mailings (id),
    message_id text NOT NULL,
    -- The folder it goes to.
    folder text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    moved_at timestamptz,
    PRIMARY KEY (mailbox, uidvalidity, uid)
);
