-- SPDX-License-Identifier: MIT
-- wrk script for tests/bench/cache_bench.sh: GET /v1/live/bench/chunks/SEQ
-- for SEQ cycling through CACHE_BENCH_FIRST .. CACHE_BENCH_LAST, each thread
-- starting at another place; prints one BENCH line with requests/s,
-- bytes/s and latency percentiles.

local first, last, seq

function init(args)
	first = tonumber(os.getenv("CACHE_BENCH_FIRST") or "0")
	last = tonumber(os.getenv("CACHE_BENCH_LAST") or "199")
	math.randomseed(4242 + (tid or 0))
	seq = math.random(first, last)
end

function request()
	seq = seq + 1
	if seq > last then
		seq = first
	end
	return wrk.format("GET", "/v1/live/bench/chunks/" .. seq)
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d duration_us=%d rps=%.1f bps=%.0f p50_us=%.0f p99_us=%.0f non2xx=%d errors=%d\n",
		summary.requests, summary.duration,
		summary.requests / (summary.duration / 1e6),
		summary.bytes / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99),
		e.status, e.connect + e.read + e.write + e.timeout))
end
