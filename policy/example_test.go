package policy_test

import (
	"fmt"
	"log"

	"github.com/tlsbridge/tlsbridge/policy"
)

func Example() {
	p, err := policy.Parse([]byte(`
connect_ports = [443, 8443]

[[rule]]
hosts = ["legacy.example.com"]
ports = [8443]
action = "bump"
[rule.upstream]
min_tls = "1.3"

[[rule]]
hosts = ["*.example.com"]
action = "tunnel"
`), "config.toml")
	if err != nil {
		log.Fatal(err)
	}
	for _, target := range []struct {
		host string
		port int
	}{
		{"LEGACY.example.com.", 8443},
		{"legacy.example.com", 443},
		{"example.org", 443},
	} {
		r := p.Match(target.host, target.port)
		fmt.Printf("%s:%d → %s (%s), upstream min TLS %s\n",
			target.host, target.port, r.Action, r.Name, policy.TLSVersionName(r.Upstream.MinVersion))
	}

	_, err = policy.Parse([]byte("[[rule]]\nhosts = [\"*.example.com\"]\n[rule.upstream]\nmin_tls = \"1.4\"\n"), "config.toml")
	fmt.Println(err)
	// Output:
	// LEGACY.example.com.:8443 → bump (rule[0]), upstream min TLS 1.3
	// legacy.example.com:443 → tunnel (rule[1]), upstream min TLS 1.2
	// example.org:443 → auto (default), upstream min TLS 1.2
	// config.toml: rule[0].upstream.min_tls: "1.4" is not a TLS version (want 1.0, 1.1, 1.2 or 1.3)
}
