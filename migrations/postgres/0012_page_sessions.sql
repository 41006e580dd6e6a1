-- Sessions of the pages, kept on the server: the browser holds only an opaque random id in its
-- cookie, and this table holds that id's SHA-256 (a copy of the table opens no session). A
-- session either rests on a bearer token pasted into the sign-in form (its hash, so that
-- revoking the token ends the session) or on a person signed in through OpenID Connect (the
-- issuer, the ID token's subject and the person's name; never the token itself). Times are
-- milliseconds since 1970 UTC: a session ends when idle past the configured timeout or at its
-- absolute expiry, whichever comes first, and when signed out (the row is deleted).
CREATE TABLE page_sessions (
    id_hash TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    trial_id TEXT,
    site_code TEXT,
    actor TEXT NOT NULL,
    token_hash TEXT,
    issuer TEXT,
    subject TEXT,
    person_name TEXT,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- Sign-ins through OpenID Connect under way: the SHA-256 of the `state` sent to the issuer, the
-- SHA-256 of the value of the browser's short-lived sign-in cookie (so that only the browser
-- that started a sign-in can finish it), the nonce and the PKCE verifier. Each is used once:
-- the callback deletes it as it reads it.
CREATE TABLE sign_in_attempts (
    state_hash TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Who opened an unblinded page, when, at which cut-off: the person (subject and name from the
-- ID token) or the token a session rests on. Apart from the audit chain, whose head keys the
-- cache of prepared trials: a read must not make the next reader's page be prepared afresh.
CREATE TABLE unblinded_page_reads (
    seq BIGSERIAL PRIMARY KEY,
    read_at TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    cutoff TEXT NOT NULL,
    role TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT,
    person_name TEXT
);
CREATE INDEX unblinded_page_reads_trial ON unblinded_page_reads (trial_id, seq);
