# table.jq: results.jsonl (slurped, one tlsbridge-bench -json line per run,
# label "PROXY SCENARIO") -> the markdown comparison table with the targets:
# for the one-shot apps (newconn-legacy, newconn-close) and keep-alive,
# >= 2x squid's operations per proxy-CPU-second and p99 no worse than
# squid's; for the other scenarios issue 6's absolute figures (p99 is
# compared with squid's for every per-connection and per-request row).
# $squid is 1 when squid ran, 0 for --tlsbridge-only, where the ratio-only
# targets cannot be judged. Each scenario has a row per tlsbridge build that
# ran (labels "tlsbridge ..." and "tlsbridge-openssl ..."), both compared
# with the same squid runs; rsa-resume is the openssl build's only (the
# static build has no session-ID cache). A -resume run shows its resumed
# share, and a tlsbridge run below 90% resumed misses.
def round2: (. * 100 | round) / 100;
def round3: (. * 1000 | round) / 1000;
# The run of a proxy and scenario: with several rounds the median by cost,
# but a run with errors wins, so errors are never hidden.
def pick($who; $scen):
  map(select(.label == "\($who) \($scen)"))
  | if length == 0 then null
    elif any(.[]; .errors != 0) then map(select(.errors != 0)) | first
    else sort_by(.proxy_cpu_per_op_us // .proxy_cpu_s_per_gib // .rss_per_conn_kib // 0) | .[(length - 1) / 2 | floor] end;
def ok: . != null and .errors == 0;
def problem:
  if . == null then "not run"
  elif .errors < 0 then "could not run: \(.first_error[0:120])"
  elif .errors > 0 then "\(.errors) errors: \((.first_error // "")[0:120])"
  else null end;

# Cost of one operation in the scenario's unit (lower is better).
def cost($kind):
  if . == null then null
  elif $kind == "bulk" then .proxy_cpu_s_per_gib
  elif $kind == "idle" then .rss_per_conn_kib
  elif $kind == "req" then .proxy_cpu_per_op_us
  else (.proxy_cpu_per_op_us // null) | if . == null then null else . / 1000 end end;
def unit($kind): {bulk: "CPU s/GiB", idle: "KiB RSS/conn", req: "µs CPU/req", conn: "ms CPU/conn", cold: "ms CPU/conn"}[$kind];
# A row of the openssl build says so after its title.
def name($b): if $b == "tlsbridge" then "" else " — **bin/tlsbridge-openssl**" end;
def resumed: (.resumed_fraction // 0) * 100 | round;
def rate($kind):
  . as $in
  | if . == null then "–"
  elif (problem) != null then problem
  elif $kind == "bulk" then "\(.mb_per_s | round) MB/s"
  elif $kind == "idle" then "\(.idle_conns) held"
  elif $kind == "req" then "\(.ops_per_sec | round) req/s"
  else "\(.ops_per_sec | round) conn/s"
    + (if (.resume // "off") != "off" then ", \(resumed)% resumed" else "" end) end;
def latency($kind):
  if . == null or (ok | not) then "–"
  elif $kind == "bulk" then "\(.seconds | round2) s"
  elif $kind == "idle" then "–"
  else "\(.p50_ms | round2) / \(.p99_ms | round2) ms" end;
def costcell($kind; $warm):
  if . == null or (ok | not) then "–"
  else (cost($kind)) as $c
  | if $c == null then "no CPU figure"
    elif $kind == "cold" and $warm != null then "\($c | round3) (\(if $c >= $warm then "+" else "" end)\(($c - $warm) | round3) vs warm)"
    else "\($c | round3)" end end;

[
  {id: "newconn-legacy", kind: "conn", title: "new connection per GET 1 KiB, TLS 1.0, legacy suites (ECDHE + RSA kex, CBC)", eff: 2, target: "≥ 2× squid's conn per CPU-s, p99 ≤ squid's"},
  {id: "newconn-close", kind: "conn", title: "as the first row, the GET carries `Connection: close` (Python urllib, PHP streams, Java keepAlive=false)", eff: 2, target: "≥ 2× squid's conn per CPU-s, p99 ≤ squid's"},
  {id: "newconn-rsa", kind: "conn", title: "as the first row, an RSA-kex-only app (Java 6, XP), no resumption", eff: 1, max: 1.0, target: "≥ 1× squid's conn per CPU-s (issue 14), ≤ 1.0 ms CPU/conn (issue 6)"},
  {id: "rsa-resume", kind: "conn", title: "as the RSA-kex-only rows, the app resumes its session by ID, no tickets (XP, Java 6)", eff: 2, resume: true, engines: ["tlsbridge-openssl"], target: "≥ 2× squid's conn per CPU-s (issue 14), ≥ 90% resumed"},
  {id: "keepalive", kind: "req", title: "keep-alive GET 1 KiB, TLS 1.0", eff: 2, target: "≥ 2× squid's req per CPU-s, p99 ≤ squid's"},
  {id: "bulk-cbc", kind: "bulk", title: "bulk 256 MiB, one connection, TLS 1.0 AES-CBC", max: 2.75, target: "≤ 2.75 CPU s/GiB (issue 6)"},
  {id: "bulk-gcm", kind: "bulk", title: "bulk 256 MiB, one connection, TLS 1.2 AES-GCM app", max: 1.2, target: "≤ 1.2 CPU s/GiB (issue 6)"},
  {id: "cold", kind: "cold", title: "new connection to a never-seen host (mint + upstream); extra = minus the first row", extra: 1.0, target: "≤ 1 ms extra CPU vs warm (issue 6)"},
  {id: "idle", kind: "idle", title: "idle bumped connections", max: 40, target: "≤ 40 KiB RSS/conn (issue 6)"}
] as $scenarios
| . as $all
| ["tlsbridge", "tlsbridge-openssl"] as $builds
| [$builds[] | . as $b | select($b == "tlsbridge" or any($all[]; .label | startswith($b + " ")))] as $ran
| ($all | pick("squid"; "newconn-legacy") | cost("conn")) as $sqwarm
| (if $squid == 1 then
    "| scenario | tlsbridge | squid | p50 / p99 tlsbridge | p50 / p99 squid | proxy cost tlsbridge | proxy cost squid | efficiency tlsbridge ÷ squid | target | result |",
    "|---|---|---|---|---|---|---|---|---|---|"
  else
    "| scenario | tlsbridge | p50 / p99 | proxy cost | target | result |",
    "|---|---|---|---|---|---|"
  end),
  ($scenarios[] as $s
   | $ran[] as $b
   | select($s.engines == null or ($s.engines | index($b)) != null)
   | ($all | pick($b; "newconn-legacy") | cost("conn")) as $tbwarm
   | ($all | pick($b; $s.id)) as $tb
   | ($all | pick("squid"; $s.id)) as $sq
   | ($tb | cost($s.kind)) as $tbc
   | ($sq | cost($s.kind)) as $sqc
   | (if $squid == 1 and ($tb | ok) and ($sq | ok) and $tbc != null and $sqc != null and $tbc > 0
      then ($sqc / $tbc) else null end) as $eff
   | [
       (if ($tb | ok | not) then "errors: \($tb | problem)" else empty end),
       (if $s.max != null and ($tb | ok) and ($tbc == null or $tbc > $s.max) then "\(if $tbc == null then "?" else ($tbc | round3 | tostring) end) > \($s.max) \(unit($s.kind))" else empty end),
       (if $s.extra != null and ($tb | ok) and ($tbc == null or $tbwarm == null or ($tbc - $tbwarm) > $s.extra)
        then (if $tbc == null or $tbwarm == null then "no CPU figure for this row or the first" else "+\(($tbc - $tbwarm) | round3) ms > \($s.extra) ms" end) else empty end),
       (if $s.eff != null and $eff != null and $eff < $s.eff then "\($eff | round2)× < \($s.eff)× squid" else empty end),
       (if $s.resume and ($tb | ok) and ($tb.resumed_fraction // 0) < 0.9 then "\($tb | resumed)% resumed < 90%" else empty end),
       (if $squid == 1 and ($s.kind == "conn" or $s.kind == "req" or $s.kind == "cold") and ($tb | ok) and ($sq | ok) and $tb.p99_ms > $sq.p99_ms
        then "p99 \($tb.p99_ms | round2) > squid's \($sq.p99_ms | round2) ms" else empty end)
     ] as $misses
   | ((if ($misses | length) > 0 then "**MISS**: " + ($misses | join("; "))
      elif $squid == 0 and $s.max == null and $s.extra == null then "– (a ratio to squid: run with squid)"
      elif $s.eff != null and $eff == null then (if ($sq | ok) then "– (no CPU figure to compare)" else "– (no clean squid run to compare)" end)
      else "**PASS**" end)
     + (if $s.resume and $squid == 1 and ($sq | ok) and ($sq.resumed_fraction // 0) < 0.9 then " (squid resumed only \($sq | resumed)%: it did full handshakes)" else "" end)) as $result
   | ($s.title + name($b) + " [" + unit($s.kind) + "]") as $title
   | if $squid == 1 then
       "| \($title) | \($tb | rate($s.kind)) | \($sq | rate($s.kind)) | \($tb | latency($s.kind)) | \($sq | latency($s.kind)) | \($tb | costcell($s.kind; $tbwarm)) | \($sq | costcell($s.kind; $sqwarm)) | \(if $eff == null then "–" else "\($eff | round2)×" end) | \($s.target) | \($result) |"
     else
       "| \($title) | \($tb | rate($s.kind)) | \($tb | latency($s.kind)) | \($tb | costcell($s.kind; $tbwarm)) | \($s.target) | \($result) |"
     end),
  "",
  "What the app negotiated with each proxy:",
  "",
  ("| scenario | " + ($ran + (if $squid == 1 then ["squid"] else [] end) | join(" | ")) + " |"),
  ("|---|" + ($ran + (if $squid == 1 then ["squid"] else [] end) | map("---|") | join(""))),
  ($scenarios[] as $s
   | def neg: if . == null or .cipher == null then "–" else "\(.negotiated_tls) \(.cipher), \(.leaf_key) leaf" end;
   "| \($s.id) | " + ($ran + (if $squid == 1 then ["squid"] else [] end) | map(. as $w | $all | pick($w; $s.id) | neg) | join(" | ")) + " |")
