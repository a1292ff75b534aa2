package policy

import (
	"slices"
	"strings"
	"testing"
)

// Settings that weaken tlsbridge load, with a warning naming the key; the
// change each warning suggests loads and silences it.
func TestWarnings(t *testing.T) {
	const rule = "[[rule]]\nhosts = [\"old.example\"]\naction = \"bump\"\n"
	const listener = "[[listener]]\nlisten = \"127.0.0.1:8443\"\nupstream = \"old.example:443\"\n"
	for _, tt := range []struct {
		name   string
		config string
		want   []string // Warning.Key values
		says   []string // in the messages, in order
		fixed  string   // the config with the suggested change: no warning
	}{
		{name: "defaults", config: ""},
		{name: "loopback-allow-all", config: "allow_clients = [\"0.0.0.0/0\"]\n"},
		{name: "narrow-allow", config: "listen = \"0.0.0.0:3128\"\nallow_clients = [\"10.0.0.0/8\"]\n"},
		{
			name:   "open-proxy-v4",
			config: "listen = \"0.0.0.0:3128\"\nallow_clients = [\"10.0.0.0/8\", \"0.0.0.0/0\"]\n",
			want:   []string{"allow_clients[1]"},
			says:   []string{`"0.0.0.0/0" admits every address while listen = "0.0.0.0:3128": tlsbridge is an open proxy for everyone who can reach that port; list only your apps' networks, e.g. allow_clients = ["10.0.0.0/8"]`},
			fixed:  "listen = \"0.0.0.0:3128\"\nallow_clients = [\"10.0.0.0/8\"]\n",
		},
		{
			name:   "open-proxy-v6",
			config: "listen = \"[::]:3128\"\nallow_clients = [\"::/0\"]\n",
			want:   []string{"allow_clients[0]"},
			says:   []string{"open proxy for everyone"},
			fixed:  "listen = \"[::]:3128\"\nallow_clients = [\"10.0.0.0/8\"]\n",
		},
		{
			name:   "open-listener",
			config: "allow_clients = [\"0.0.0.0/0\"]\n[[listener]]\nlisten = \"0.0.0.0:8443\"\nupstream = \"old.example:443\"\n",
			want:   []string{"allow_clients[0]"},
			says:   []string{`listener[0].listen = "0.0.0.0:8443": everyone who can reach that port gets a tunnel to old.example:443`},
			fixed:  "allow_clients = [\"10.0.0.0/8\"]\n[[listener]]\nlisten = \"0.0.0.0:8443\"\nupstream = \"old.example:443\"\n",
		},
		{
			name:   "global-verify",
			config: "[upstream]\nverify = false\n" + rule,
			want:   []string{"upstream.verify"},
			says:   []string{"NOT verified"},
			fixed:  rule,
		},
		{
			name:   "rule-verify",
			config: rule + "[rule.upstream]\nverify = false\n",
			want:   []string{"rule[0].upstream.verify"},
			says:   []string{"the certificates of the hosts of rule[0] (old.example) are NOT verified"},
			fixed:  rule,
		},
		{
			name:   "global-min-tls",
			config: "[upstream]\nmin_tls = \"1.0\"\n",
			want:   []string{"upstream.min_tls"},
			says:   []string{`"1.0" lets tlsbridge speak TLS 1.0 to the servers of every rule and listener that does not set it`},
			fixed:  "[upstream]\nmin_tls = \"1.2\"\n",
		},
		{
			name:   "rule-min-tls",
			config: rule + "[rule.upstream]\nmin_tls = \"1.1\"\n",
			want:   []string{"rule[0].upstream.min_tls"},
			says:   []string{`"1.1" lets tlsbridge speak TLS 1.1 to the hosts of rule[0] (old.example)`},
			fixed:  rule,
		},
		{
			name:   "listener-min-tls-and-verify",
			config: "[[listener]]\nlisten = \"127.0.0.1:8443\"\n[listener.upstream]\naddress = \"old.example:443\"\nmin_tls = \"1.0\"\nverify = false\n",
			want:   []string{"listener[0].upstream.verify", "listener[0].upstream.min_tls"},
			says:   []string{"listener[0]'s server old.example:443 are NOT verified", "TLS 1.0 to listener[0]'s server old.example:443"},
			fixed:  listener,
		},
		{name: "tunnel-rule-min-tls", config: "[[rule]]\nhosts = [\"old.example\"]\naction = \"tunnel\"\n[rule.upstream]\nmin_tls = \"1.0\"\n"},
		{name: "plain-backend-listener", config: "[[listener]]\nlisten = \"127.0.0.1:8443\"\nupstream = \"127.0.0.1:8080\"\nclient_tls = true\nupstream_tls = false\n[listener.client]\nmin_tls = \"1.0\"\n"},
		{name: "client-min-tls", config: "[client]\nmin_tls = \"1.0\"\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ws := mustParse(t, tt.config).Warnings()
			var keys []string
			for _, w := range ws {
				keys = append(keys, w.Key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Fatalf("Warnings() keys = %q, want %q\n%v", keys, tt.want, ws)
			}
			for i, s := range tt.says {
				if got := ws[i].String(); !strings.Contains(got, s) || !strings.HasPrefix(got, "config.toml: "+tt.want[i]+": ") {
					t.Errorf("warning %d = %q, want config.toml: %s: ...%s...", i, got, tt.want[i], s)
				}
			}
			if tt.fixed != "" {
				if ws := mustParse(t, tt.fixed).Warnings(); len(ws) != 0 {
					t.Errorf("the suggested fix still warns: %v", ws)
				}
			}
		})
	}
}
