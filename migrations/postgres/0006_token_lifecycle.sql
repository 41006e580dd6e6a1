-- Tokens that can be listed, revoked by id and that expire. The id is the first 12 hex digits
-- of the token's hash, the same short name the audit log gives the token's actions
-- (`token:` + id); it reveals nothing that would let anyone use the token.
ALTER TABLE tokens ADD COLUMN token_id TEXT;
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN revoked_by TEXT;
UPDATE tokens SET token_id = substr(token_hash, 1, 12);
CREATE UNIQUE INDEX tokens_token_id ON tokens (token_id);
