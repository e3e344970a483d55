-- Accounts managed in the browser. An administrator creates, disables and re-opens accounts
-- and starts a password reset; the person chooses the password through a one-time link
-- e-mailed to them, so no administrator ever knows it.
ALTER TABLE portal_users DROP CONSTRAINT portal_users_role_check;
ALTER TABLE portal_users ADD CONSTRAINT portal_users_role_check CHECK (role IN ('counter', 'operator', 'supervisor', 'admin'));

-- One-time links: the e-mail carries a random token, the table its SHA-256 (as for sessions).
-- A link serves once (`used_at`), expires, and is replaced by the next one sent.
CREATE TABLE account_links (
    token_sha256  bytea PRIMARY KEY,
    account       bigint NOT NULL REFERENCES portal_users(id),
    -- 'invitation' for a new account, 'reset' when an administrator reset the password.
    purpose       text NOT NULL CHECK (purpose IN ('invitation', 'reset')),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX account_links_by_account ON account_links (account);
