-- SPDX-License-Identifier: MIT
-- login-server: accounts, and accounting of sessions and connections (seed 000 §2-4).

-- One row per account. pwhash is an argon2id string from libsodium's
-- crypto_pwhash_str (parameters inside it); a disabled account cannot log in.
CREATE TABLE accounts (
	id         bigserial PRIMARY KEY,
	name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{2,31}$'),
	pwhash     text NOT NULL CHECK (pwhash LIKE '$argon2id$%'),
	disabled   boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per login session, written in batches by the login-server.
-- sid is the session's accounting id (never the token). logout_at is set
-- on logout, when a newer login of the account replaces it, or when it
-- expired (then it is the last heartbeat seen, within reap_s).
CREATE TABLE login_sessions (
	sid          text PRIMARY KEY CHECK (sid ~ '^[0-9a-f]{32}$'),
	account      text NOT NULL,
	nat          text NOT NULL CHECK (nat IN ('outer', 'inner')),
	public_addr  text NOT NULL,
	private_addr text,
	login_at     timestamptz NOT NULL,
	last_seen    timestamptz,
	logout_at    timestamptz,
	end_reason   text CHECK (end_reason IN ('logout', 'replaced', 'expired'))
);
CREATE INDEX login_sessions_account ON login_sessions (account, login_at DESC);
CREATE INDEX login_sessions_open ON login_sessions (login_at) WHERE logout_at IS NULL;

-- One row per brokered connect (POST /v1/connect): the mode decided first,
-- the mode in the end (relay after a failed lan check), the outcome the
-- peers reported, and the relay's byte counts merged from the relay-servers'
-- accounting stream (bytes_ab: initiator to target).
CREATE TABLE connections (
	cid              text PRIMARY KEY CHECK (cid ~ '^[0-9a-f]{32}$'),
	initiator        text,
	target           text,
	mode             text NOT NULL CHECK (mode IN ('direct', 'reverse', 'lan', 'relay')),
	first_mode       text NOT NULL CHECK (first_mode IN ('direct', 'reverse', 'lan', 'relay')),
	lan_failed       boolean NOT NULL DEFAULT false,
	outcome          text CHECK (outcome IN ('success', 'failure')),
	reported_by      text,
	result_at        timestamptz,
	relay_id         text,
	relay_mode       text,
	bytes_ab         bigint NOT NULL DEFAULT 0,
	bytes_ba         bigint NOT NULL DEFAULT 0,
	relay_sessions   integer NOT NULL DEFAULT 0,
	relay_ended_at   timestamptz,
	relay_end_reason text,
	created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connections_created ON connections (created_at DESC);
CREATE INDEX connections_initiator ON connections (initiator, created_at DESC);
