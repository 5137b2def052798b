-- SPDX-License-Identifier: MIT
-- tracker: the program catalog (seed 003 §3.2) and the torrent store (§3.3).

-- One row per program: a VOD torrent (uploaded .torrent) or a live channel
-- (registered by name and source; info_hash = SHA-1 of the source URL).
-- The counts are flushed from the tracker's memory every few seconds.
CREATE TABLE programs (
	info_hash  bytea PRIMARY KEY CHECK (length(info_hash) = 20),
	kind       text NOT NULL CHECK (kind IN ('vod', 'live')),
	name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 512),
	source     text CHECK (length(source) BETWEEN 1 AND 2048),
	size       bigint CHECK (size >= 0),
	seeders    integer NOT NULL DEFAULT 0,
	leechers   integer NOT NULL DEFAULT 0,
	completed  bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX programs_hot ON programs ((seeders + leechers) DESC, completed DESC);
CREATE INDEX programs_new ON programs (created_at DESC);
CREATE UNIQUE INDEX programs_live_source ON programs (source) WHERE kind = 'live';

CREATE TABLE torrents (
	info_hash   bytea PRIMARY KEY REFERENCES programs (info_hash) ON DELETE CASCADE,
	data        bytea NOT NULL,
	uploaded_at timestamptz NOT NULL DEFAULT now()
);
