// Package policy turns tlsbridge's TOML config into a validated, immutable
// [*Policy] and answers, for each CONNECT, which [Rule] applies.
//
// Loading has two stages. The file is decoded over the built-in defaults
// into a private mirror of the TOML (absent keys keep their defaults;
// unknown keys are reported with a hint). Then one pass builds the Policy:
// each value is parsed once, into its typed form — TLS versions, client
// prefixes, compiled host matchers, actions, durations, root pools, the
// leaf key type and the CA's permitted hosts — while every problem is
// recorded as a [*KeyError] naming the file and dotted key
// ("config.toml: rule[2].upstream.min_tls: ..."): bad TLS versions,
// inverted min/max pairs, bad globs, CIDRs, ports, addresses and CA files,
// and non-loopback listen addresses without allow_clients. All of them are
// returned at once.
//
// A [[rule]] matches by host glob and, optionally, port:
//
//	[[rule]]
//	hosts = ["api.example.com", "*.internal.example", "10.0.0.0/8"]
//	ports = [443, 8443]   # optional; empty or absent means any port
//	action = "bump"       # auto (the default) | bump | tunnel | deny
//
// Globs are exact names, a leading wildcard label ("*.example.com" matches
// every subdomain at any depth but not example.com itself), "*" alone, IP
// literals and CIDRs (which match IP-literal hosts). Names are normalized
// like hosts are (lower case, no trailing dot, IDNA to ASCII). The first
// matching rule wins; no match yields [Policy.Default], action auto.
//
// [rule.client], [rule.upstream] and [listener.upstream] override single
// keys of the global [client] and [upstream]; absent keys inherit, and
// ca_files replaces the global list (the system roots always stay). A
// [[listener]] names its target with upstream = "host:port" and the
// verification name with server_name beside it (the contract's spelling).
// Because TOML cannot give one key both a string and a table, a listener
// that has a [listener.upstream] table names its target there, in the
// address key (server_name may go there too); both spellings load. A
// listener also takes client_tls, upstream_tls (false: a TLS front for a
// plain backend, which needs client_tls = true), alpn (protocols to pin,
// RFC 7301) and a [listener.client] table overriding [client].
//
// Match is pure and allocation-free for normalized hosts; a reload builds a
// new Policy instead of changing one, so a Policy needs no locks.
package policy
