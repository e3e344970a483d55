-- Originals sent by mistake. The piece filed is the bureau's copy of the original, stamped
-- "COPIE" (`pieces.original`); the paper itself is kept at most a month after reception, then
-- posted back to the GIP SNE, which returns it to its owner. This is the register of that paper.
ALTER TABLE pieces ADD COLUMN original boolean NOT NULL DEFAULT false;

CREATE TABLE originals (
    piece_id       text PRIMARY KEY REFERENCES pieces(id),
    mailing_id     text NOT NULL REFERENCES mailings(id),
    numero_unique  text,
    type_code      text,
    -- Where the paper is in the bureau: the tray or box label the operator wrote.
    location       text NOT NULL CHECK (location <> ''),
    received_at    timestamptz NOT NULL,
    -- The day it must leave: reception plus one month.
    due_at         timestamptz NOT NULL,
    state          text NOT NULL DEFAULT 'kept' CHECK (state IN ('kept', 'returned')),
    returned_on    date,
    tracking       text,
    confirmed_by   text NOT NULL,
    confirmed_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'returned') = (returned_on IS NOT NULL))
);
CREATE INDEX originals_kept ON originals (due_at) WHERE state = 'kept';
