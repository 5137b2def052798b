-- SPDX-License-Identifier: MIT
-- wrk script for tests/bench/index_bench.sh: POST /v1/heartbeat or
-- POST /v1/join for PeerIDs that are members of the benchmark swarm, so
-- the index-server does the real work (heartbeat script, proximity window
-- over a swarm of INDEX_BENCH_N peers) instead of answering one peer over
-- and over. The same script drives the nginx reference, which answers a
-- static file of the same size: both get byte-for-byte the same requests.
--
-- Environment:
--   INDEX_BENCH_OP       heartbeat (default) | join
--   INDEX_BENCH_CHANNEL  channel name (default bench)
--   INDEX_BENCH_PIDS     file with one member PeerID per line (required)
--   INDEX_BENCH_COUNT    requests prepared per wrk thread (default 4096)
--
-- done() prints one machine-readable line that index_bench.sh parses:
--   BENCH requests=N duration_us=N rps=F p50_us=F p99_us=F non2xx=N errors=N

local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("tid", nthreads)
end

local reqs, n, i

function init(args)
	local op = os.getenv("INDEX_BENCH_OP") or "heartbeat"
	local ch = os.getenv("INDEX_BENCH_CHANNEL") or "bench"
	local file = os.getenv("INDEX_BENCH_PIDS")
	local count = tonumber(os.getenv("INDEX_BENCH_COUNT") or "4096")
	local pids = {}
	for line in io.lines(file) do
		pids[#pids + 1] = line
	end
	math.randomseed(7000 + (tid or 0))
	reqs = {}
	local hdr = { ["Content-Type"] = "application/json" }
	for k = 1, count do
		local pid = pids[math.random(1, #pids)]
		local body
		if op == "join" then
			body = string.format('{"peer_id":"%s","channel":"%s","listen_addr":"203.0.113.%d:%d",'
				.. '"bandwidth_kbps":2000}', pid, ch, k % 250 + 1, 4000 + k % 1000)
			reqs[k] = wrk.format("POST", "/v1/join", hdr, body)
		else
			body = string.format('{"peer_id":"%s","channel":"%s"}', pid, ch)
			reqs[k] = wrk.format("POST", "/v1/heartbeat", hdr, body)
		end
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
