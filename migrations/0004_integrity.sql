-- What the code writes, checked by the database too: a bug or a hand edit that writes another
-- state fails loudly instead of showing an unknown state on the people's pages.
ALTER TABLE pieces ADD CONSTRAINT pieces_status_known CHECK (status IN ('uploaded', 'review', 'rejected'));
ALTER TABLE pages ADD CONSTRAINT pages_role_known CHECK (role IN ('slip', 'piece', 'blank', 'rejected'));
ALTER TABLE requests ADD CONSTRAINT requests_status_known CHECK (status IN ('accepted', 'partial', 'rejected'));

-- A mailing's pieces are read by mailing on every mailing page of the portal and the console.
CREATE INDEX pieces_by_mailing ON pieces (mailing_id);

-- The counters named by mailings and incidents are the registry's. A mailing's counter is set
-- only when the registry knows it (a bordereau may name one it does not): an unknown one left by
-- an earlier version is cleared (such a mailing was visible to no counter anyway).
UPDATE mailings SET guichet = NULL WHERE guichet IS NOT NULL AND guichet NOT IN (SELECT numero FROM guichets);
ALTER TABLE mailings ADD CONSTRAINT mailings_guichet_known FOREIGN KEY (guichet) REFERENCES guichets (numero);
ALTER TABLE incidents ADD CONSTRAINT incidents_guichet_known FOREIGN KEY (guichet) REFERENCES guichets (numero);
