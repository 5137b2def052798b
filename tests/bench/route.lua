-- SPDX-License-Identifier: MIT
-- wrk script for tests/bench/route_bench.sh: GET /v1/route with a different
-- client address in X-Forwarded-For on each request, so the route-server
-- does real geo lookups and allocates real PeerIDs instead of answering the
-- same client over and over.
--
-- Environment:
--   ROUTE_BENCH_ADDRS       random (default): random public IPv4 addresses,
--                           for the real geo data; test: addresses of the
--                           invented networks of tests/gen-mmdb.pl
--   ROUTE_BENCH_ADDR_COUNT  addresses per wrk thread (default 4096)
--
-- The requests are formatted once per thread in init(), so the client
-- spends its time sending, not building strings. The same script drives the
-- nginx reference, which ignores the header: both servers get byte-for-byte
-- the same requests.
--
-- done() prints one machine-readable line that route_bench.sh parses:
--   BENCH requests=N duration_us=N rps=F p50_us=F p99_us=F non2xx=N errors=N

local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("tid", nthreads)
end

-- Reserved and private first octets / prefixes: the route-server answers
-- those from default_domain without a lookup, which would flatter it.
local function reserved(a, b)
	return a == 0 or a == 10 or a == 127 or a >= 224
		or (a == 100 and b >= 64 and b < 128)
		or (a == 169 and b == 254)
		or (a == 172 and b >= 16 and b < 32)
		or (a == 192 and b == 168)
		or (a == 198 and (b == 18 or b == 19))
end

local function random_public()
	while true do
		local a, b = math.random(1, 223), math.random(0, 255)
		if not reserved(a, b) then
			return string.format("%d.%d.%d.%d", a, b, math.random(0, 255), math.random(1, 254))
		end
	end
end

-- Networks of tests/gen-mmdb.pl: CN with and without ASN, US, DE (IPv6),
-- FR without ASN, and 9.9.9.0/24 which is in neither database.
local function test_addr(k)
	local h = k % 250 + 1
	local pick = k % 7
	if pick == 0 then return "1.2.4." .. (h % 127 + 1) end
	if pick == 1 then return "1.2.4." .. (128 + h % 127) end
	if pick == 2 then return "1.2.5." .. h end
	if pick == 3 then return "36.96.0." .. h end
	if pick == 4 then return "8.8.4." .. h end
	if pick == 5 then return string.format("2a01:238::%x", k + 1) end
	return (k % 2 == 0) and ("5.10.0." .. h) or ("9.9.9." .. h)
end

local reqs, n, i

function init(args)
	local mode = os.getenv("ROUTE_BENCH_ADDRS") or "random"
	local count = tonumber(os.getenv("ROUTE_BENCH_ADDR_COUNT") or "4096")
	math.randomseed(20240 + (tid or 0))
	reqs = {}
	for k = 1, count do
		local addr = (mode == "test") and test_addr(k + 1000 * (tid or 0)) or random_public()
		reqs[k] = wrk.format("GET", "/v1/route", { ["X-Forwarded-For"] = addr })
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
		"BENCH requests=%d duration_us=%d rps=%.1f p50_us=%.0f p99_us=%.0f non2xx=%d errors=%d\n",
		summary.requests, summary.duration,
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99),
		e.status, e.connect + e.read + e.write + e.timeout))
end
