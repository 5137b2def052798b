-- SPDX-License-Identifier: MIT
-- wrk script for tests/bench/login_bench.sh.
--
-- LOGIN_BENCH_MODE=hb (default): POST /v1/heartbeat, each request with the
--   next session token of LOGIN_BENCH_TOKENS (a file, one token a line), so
--   the server checks and refreshes many different sessions in Redis.
-- LOGIN_BENCH_MODE=login: POST /v1/login for the accounts of
--   LOGIN_BENCH_USERS (one name a line, password LOGIN_BENCH_PASSWORD),
--   listen_port LOGIN_BENCH_PROBE_PORT, so each login runs argon2id and a
--   connect-back probe.
-- The requests are formatted once per thread in init(). The nginx
-- reference gets byte-for-byte the same requests.
--
-- done() prints the line login_bench.sh parses:
--   BENCH requests=N duration_us=N rps=F p50_us=F p99_us=F non2xx=N errors=N

local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("tid", nthreads)
end

local reqs, n, i

local function lines(path)
	local out = {}
	local f = assert(io.open(path, "r"))
	for l in f:lines() do
		if #l > 0 then
			out[#out + 1] = l
		end
	end
	f:close()
	return out
end

function init(args)
	local mode = os.getenv("LOGIN_BENCH_MODE") or "hb"
	reqs = {}
	if mode == "login" then
		local pw = os.getenv("LOGIN_BENCH_PASSWORD")
		local port = os.getenv("LOGIN_BENCH_PROBE_PORT")
		for _, u in ipairs(lines(os.getenv("LOGIN_BENCH_USERS"))) do
			local body = string.format(
				'{"user":"%s","password":"%s","listen_port":%s}', u, pw, port)
			reqs[#reqs + 1] = wrk.format("POST", "/v1/login",
				{ ["Content-Type"] = "application/json" }, body)
		end
	else
		for _, t in ipairs(lines(os.getenv("LOGIN_BENCH_TOKENS"))) do
			reqs[#reqs + 1] = wrk.format("POST", "/v1/heartbeat",
				{ ["Authorization"] = "Bearer " .. t }, "")
		end
	end
	n = #reqs
	math.randomseed(4242 + (tid or 0))
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
