-- Shared by every wrk script of bench/run: prints one machine-readable RESULT line.
-- Latencies are in microseconds, as wrk records them.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d socket_errors=%d non2xx=%d\n",
    summary.requests,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50),
    latency:percentile(99),
    e.connect + e.read + e.write + e.timeout,
    e.status))
end
