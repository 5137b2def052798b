-- SPDX-License-Identifier: MIT
-- route-server: domains, partition rules and stable region/city codes.

CREATE TABLE domains (
	name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
	index_servers text[] NOT NULL DEFAULT '{}',
	latitude      double precision CHECK (latitude BETWEEN -90 AND 90),
	longitude     double precision CHECK (longitude BETWEEN -180 AND 180),
	updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Ordered partition rules: the lowest priority (then id) whose non-NULL
-- fields all match the client's geo wins.
CREATE TABLE domain_rules (
	id         bigserial PRIMARY KEY,
	priority   integer NOT NULL DEFAULT 100,
	country    text CHECK (country ~ '^[A-Z]{2}$'),
	nettype    smallint CHECK (nettype BETWEEN 0 AND 15),
	region     text CHECK (length(region) BETWEEN 1 AND 128),
	city       text CHECK (length(city) BETWEEN 1 AND 128),
	domain     text NOT NULL REFERENCES domains (name) ON DELETE RESTRICT,
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- PeerID region/city codes (seed 001 §3.1.1): assigned once, never reused.
-- 1..62 are assigned in order of first sight; 63 is the shared overflow.
CREATE TABLE geo_regions (
	country smallint NOT NULL,
	name    text NOT NULL,
	code    smallint NOT NULL CHECK (code BETWEEN 1 AND 63),
	PRIMARY KEY (country, name)
);
CREATE UNIQUE INDEX geo_regions_code ON geo_regions (country, code) WHERE code < 63;

CREATE TABLE geo_cities (
	country smallint NOT NULL,
	region  smallint NOT NULL,
	name    text NOT NULL,
	code    smallint NOT NULL CHECK (code BETWEEN 1 AND 63),
	PRIMARY KEY (country, region, name)
);
CREATE UNIQUE INDEX geo_cities_code ON geo_cities (country, region, code) WHERE code < 63;

-- Every change to domains or rules bumps this counter; route-server
-- instances poll it and reload, so an admin change applies everywhere
-- within one poll interval.
CREATE TABLE route_generation (
	id         integer PRIMARY KEY CHECK (id = 1),
	generation bigint NOT NULL
);
INSERT INTO route_generation VALUES (1, 1);

CREATE FUNCTION route_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE route_generation SET generation = generation + 1 WHERE id = 1;
	RETURN NULL;
END $$;

CREATE TRIGGER domains_bump AFTER INSERT OR UPDATE OR DELETE ON domains
	FOR EACH STATEMENT EXECUTE FUNCTION route_bump_generation();
CREATE TRIGGER domain_rules_bump AFTER INSERT OR UPDATE OR DELETE ON domain_rules
	FOR EACH STATEMENT EXECUTE FUNCTION route_bump_generation();
