-- SPDX-License-Identifier: MIT
-- wrk script for tests/bench/tracker_bench.sh: BEP 3 HTTP announces over
-- many torrents and many peers, byte-for-byte the same stream for our
-- tracker and for opentracker.
--
-- Each request: a random info_hash of the bench's list (both trackers
-- whitelist exactly that list), a random peer_id, a random port 1024-65535
-- (all come from 127.0.0.1, and both trackers key a peer by address and
-- port, so the port makes the peer), left = 0 for a quarter of them
-- (seeders) and random otherwise, compact=1, numwant=50. No
-- X-Forwarded-For and no ip=: both trackers take the socket address.
--
-- Environment:
--   TRACKER_BENCH_HASHES     file of info_hashes, 40 hex digits a line
--   TRACKER_BENCH_POOL       requests per wrk thread (default 20000), formatted
--                            once in init() so the client spends its time
--                            sending; sent round-robin from a seeded start
--   TRACKER_BENCH_KEEPALIVE  1: keep connections open (our tracker only
--                            benefits: opentracker closes after every
--                            answer); default: "Connection: close", one TCP
--                            connection per announce, as clients do
--
-- The random stream is seeded by the wrk thread number only, so each run
-- sends the same announces in the same order.
--
-- done() prints one machine-readable line that tracker_bench.sh parses:
--   BENCH requests=N duration_us=N rps=F p50_us=F p99_us=F non2xx=N
--         errors_connect=N errors_read=N errors_write=N errors_timeout=N

local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("tid", nthreads)
end

local function load_hashes(path)
	local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
	local t = {}
	for line in f:lines() do
		local hex = line:match("^(%x+)")
		if hex and #hex == 40 then
			-- Every byte percent-encoded: both trackers must decode,
			-- and %00 and other binary values are exercised.
			t[#t + 1] = hex:gsub("(%x%x)", "%%%1")
		end
	end
	f:close()
	assert(#t > 0, "no info_hashes in " .. path)
	return t
end

local alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

local function random_peer_id()
	local c = {}
	for k = 1, 12 do
		local j = math.random(1, #alnum)
		c[k] = alnum:sub(j, j)
	end
	return "-WB0001-" .. table.concat(c)
end

local reqs, n, i

function init(args)
	local hashes = load_hashes(os.getenv("TRACKER_BENCH_HASHES"))
	local count = tonumber(os.getenv("TRACKER_BENCH_POOL") or "20000")
	local headers = {}
	if os.getenv("TRACKER_BENCH_KEEPALIVE") ~= "1" then
		headers["Connection"] = "close"
	end
	math.randomseed(30030 + (tid or 0))
	reqs = {}
	for k = 1, count do
		local left = 0
		if math.random(1, 4) ~= 1 then
			left = math.random(1, 2000000000)
		end
		local path = string.format(
			"/announce?info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0"
			.. "&left=%d&compact=1&numwant=50&key=%08x",
			hashes[math.random(1, #hashes)], random_peer_id(),
			math.random(1024, 65535), left, math.random(0, 0x7fffffff))
		reqs[k] = wrk.format("GET", path, headers)
	end
	n = #reqs
	i = math.random(0, n - 1)
end

function request()
	i = i % n + 1
	return reqs[i]
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d duration_us=%d rps=%.1f p50_us=%.0f p99_us=%.0f non2xx=%d "
		.. "errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
		summary.requests, summary.duration,
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99),
		e.status, e.connect, e.read, e.write, e.timeout))
end
