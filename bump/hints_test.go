package bump

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tlsbridge/tlsbridge/ca"
	"github.com/tlsbridge/tlsbridge/policy"
)

// STYLE 12b, issue 13 item 7: every config key a hint names is one the
// loader accepts where the hint says, and applying the hint to the config
// loads and reaches the failing target. TestHintsLoad reads the fixes the
// way a user would: each `key = value` (or `key`) followed by where it goes.

// hintModel is a config the test can edit the way a hint says.
type hintModel struct {
	tables    map[string][]string // "upstream", "client", "ca": their lines
	rules     []*hintRule
	listeners []*hintListener
}

type hintRule struct {
	hosts, action    string
	upstream, client []string
}

type hintListener struct {
	listen, target        string
	table                 bool // the target is address in [listener.upstream]
	top, upstream, client []string
}

func (m *hintModel) clone() *hintModel {
	c := &hintModel{tables: map[string][]string{}}
	for k, v := range m.tables {
		c.tables[k] = slices.Clone(v)
	}
	for _, r := range m.rules {
		c.rules = append(c.rules, &hintRule{r.hosts, r.action, slices.Clone(r.upstream), slices.Clone(r.client)})
	}
	for _, l := range m.listeners {
		c.listeners = append(c.listeners, &hintListener{l.listen, l.target, l.table, slices.Clone(l.top), slices.Clone(l.upstream), slices.Clone(l.client)})
	}
	return c
}

func (m *hintModel) render() string {
	var b strings.Builder
	for _, name := range []string{"ca", "client", "upstream"} {
		fmt.Fprintf(&b, "[%s]\n%s\n", name, strings.Join(m.tables[name], "\n"))
	}
	for _, r := range m.rules {
		fmt.Fprintf(&b, "[[rule]]\nhosts = [%q]\naction = %q\n[rule.upstream]\n%s\n[rule.client]\n%s\n", r.hosts, r.action, strings.Join(r.upstream, "\n"), strings.Join(r.client, "\n"))
	}
	for _, l := range m.listeners {
		fmt.Fprintf(&b, "[[listener]]\nlisten = %q\n%s\n", l.listen, strings.Join(l.top, "\n"))
		if !l.table {
			fmt.Fprintf(&b, "upstream = %q\n", l.target)
		}
		fmt.Fprintf(&b, "[listener.client]\n%s\n", strings.Join(l.client, "\n"))
		if l.table {
			fmt.Fprintf(&b, "[listener.upstream]\naddress = %q\n%s\n", l.target, strings.Join(l.upstream, "\n"))
		} else {
			if len(l.upstream) > 0 {
				// What a user who follows a hint literally, without the
				// table form, would write: the loader must reject it.
				fmt.Fprintf(&b, "[listener.upstream]\n%s\n", strings.Join(l.upstream, "\n"))
			}
		}
	}
	return b.String()
}

// set replaces or adds key = value in lines, returning the old value.
func set(lines *[]string, key, value string) (old string, had bool) {
	for i, l := range *lines {
		if k, v, ok := strings.Cut(l, " = "); ok && k == key {
			(*lines)[i] = key + " = " + value
			return v, true
		}
	}
	*lines = append(*lines, key+" = "+value)
	return "", false
}

// hintEdit is one `key = value` a fix names, and where.
var (
	hintKeyRe = regexp.MustCompile("`([a-z_]+)(?: = ([^`]+))?`(?: or `([a-z_]+)`)? in (its \\[rule\\.upstream\\]|its \\[listener\\.upstream\\]|\\[(?:upstream|client|ca)\\]|\\[(?:rule|listener)\\.(?:upstream|client)\\] of (?:rule|listener)\\[\\d+\\]|listener\\[\\d+\\])")
	anyKeyRe  = regexp.MustCompile("`[a-z_]+( = [^`]+)?`")
	newRuleRe = regexp.MustCompile(`add a \[\[rule\]\] with hosts = \["([^"]+)"\]`)
	ownerRe   = regexp.MustCompile(`(rule|listener)\[(\d+)\]`)
	fixRe     = regexp.MustCompile("fix `([a-z_]+) = ")
)

// sampleValue is a valid value for a key a fix names without one, or for a
// placeholder.
func sampleValue(key, value string) string {
	switch {
	case value == `"IP:PORT"`:
		return `"192.0.2.7:443"`
	case value != "":
		return value
	}
	return map[string]string{"min_tls": `"1.1"`, "max_tls": `"1.3"`, "address": `"192.0.2.7:443"`, "upstream": `"192.0.2.7:443"`}[key]
}

// apply makes the edit in m; for a fix of a key already set it changes the
// value to another valid one. It returns the rule or listener the edit
// went to (new rules go first) and whether the key was already set there.
func (m *hintModel) apply(t *testing.T, fix, key, value, where string) (owner string, had bool) {
	t.Helper()
	value = sampleValue(key, value)
	if strings.HasPrefix(where, "its [rule.upstream]") {
		mm := newRuleRe.FindStringSubmatch(fix)
		if mm == nil {
			t.Fatalf("fix puts %s into a new rule without naming its hosts: %s", key, fix)
		}
		m.rules = append([]*hintRule{{hosts: mm[1], action: "auto", upstream: []string{key + " = " + value}}}, m.rules...)
		return "rule[0]", false
	}
	if strings.HasPrefix(where, "[") && !strings.Contains(where, " of ") {
		name := strings.Trim(where, "[]")
		_, had = set(func() *[]string { l := m.tables[name]; return &l }(), key, value)
		l := m.tables[name]
		set(&l, key, value)
		m.tables[name] = l
		return "default", had
	}
	o := ownerRe.FindStringSubmatch(where)
	if o == nil { // "its [listener.upstream]": the listener named before
		o = ownerRe.FindStringSubmatch(fix)
	}
	i, _ := strconv.Atoi(o[2])
	switch {
	case o[1] == "rule" && strings.Contains(where, "[rule.client]"):
		_, had = set(&m.rules[i].client, key, value)
	case o[1] == "rule":
		_, had = set(&m.rules[i].upstream, key, value)
	case strings.Contains(where, "[listener.client]"):
		_, had = set(&m.listeners[i].client, key, value)
	case key == "upstream" || key == "address":
		l := m.listeners[i]
		had, l.target = true, strings.Trim(value, `"`)
	case strings.Contains(where, "[listener.upstream]"):
		l := m.listeners[i]
		if !strings.Contains(fix, "as a table") && !l.table {
			t.Errorf("fix puts %s into [listener.upstream] of a listener written as upstream = \"host:port\" without saying how: %s", key, fix)
		}
		l.table = true
		_, had = set(&l.upstream, key, value)
	default:
		_, had = set(&m.listeners[i].top, key, value)
	}
	return o[0], had
}

func TestHintsLoad(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		t.Fatal(err)
	}
	// The example file name the ca_files fixes use, present so the edited
	// config loads.
	if err := os.WriteFile(filepath.Join(dir, "origin-ca.pem"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	// The files the issue 15 fixes name: parent credentials and a client
	// certificate.
	if err := os.WriteFile(filepath.Join(dir, "proxy-auth.txt"), []byte("alice:pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	newClientCA(t, "hint client CA").issue(t, dir, "client", "hint")
	base := &hintModel{
		tables: map[string][]string{"upstream": {fmt.Sprintf("ca_files = [%q]", o.caFile), `proxy = "http://192.0.2.1:3128"`}},
		rules: []*hintRule{
			{hosts: "pinned.test", action: "bump", upstream: []string{`address = "192.0.2.10:443"`}},
			{hosts: "exact.test", action: "bump"},
			{hosts: "*.wild.test", action: "bump", upstream: []string{`min_tls = "1.3"`, `max_tls = "1.3"`}},
			{hosts: "named.test", action: "auto", upstream: []string{`server_name = "other.test"`}},
			{hosts: "old.test", action: "bump", upstream: []string{`max_tls = "1.2"`}},
		},
		listeners: []*hintListener{
			{listen: "127.0.0.1:18080", target: "string.test:443"},
			{listen: "127.0.0.1:18081", target: "table.test:443", table: true, upstream: []string{`max_tls = "1.2"`}},
		},
	}
	configPath := filepath.Join(dir, "config.toml")
	pol, err := policy.Parse([]byte(base.render()), configPath)
	if err != nil {
		t.Fatalf("base config:\n%s\n%v", base.render(), err)
	}

	type target struct{ host, what string }
	targets := []target{{"free.test", "default rule"}, {"pinned.test", "rule with address"}, {"exact.test", "rule for the host alone"},
		{"a.wild.test", "wildcard rule"}, {"named.test", "rule with server_name"}, {"old.test", "rule with max_tls 1.2"},
		{"listener[0]", "listener, upstream = host:port"}, {"listener[1]", "listener, table form"}}
	ruleFor := func(tg target) (*policy.Rule, string, int) {
		if strings.HasPrefix(tg.host, "listener[") {
			i, _ := strconv.Atoi(tg.host[len("listener[") : len(tg.host)-1])
			l := pol.Listeners[i]
			h, p := splitTarget(l.Upstream, -1)
			return &policy.Rule{Name: l.Name, Action: policy.ActionBump, Client: l.Client, Upstream: l.UpstreamTLS}, h, p
		}
		return pol.Match(tg.host, 443), tg.host, 443
	}
	leaf := &x509.Certificate{DNSNames: []string{"origin.test"}}
	kinds := []struct {
		name, stage string
		err         error
	}{
		{"dns", "dial", &net.DNSError{Name: "x.test", Err: "no such host", IsNotFound: true}},
		{"timeout", "handshake", context.DeadlineExceeded},
		{"loop", "dial", fmt.Errorf("dial: %w", errLoop)},
		{"refused", "dial", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}},
		{"unknown-ca", "handshake", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: leaf}}},
		{"hostname", "handshake", &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: leaf, Host: "x.test"}}},
		{"expired", "handshake", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired}}},
		{"verify-other", "handshake", &tls.CertificateVerificationError{Err: errors.New("x509: something")}},
		{"protocol-version", "handshake", &net.OpError{Op: "remote error", Err: tls.AlertError(alertProtocolVersion)}},
		{"other-handshake", "handshake", errors.New("tls: unexpected message")},
		{"exchange", "exchange", errors.New("connection reset")},
	}
	// Issue 15: parent proxy and client certificate failures, built from
	// the failing rule's parent.
	type parentKind struct {
		name, stage string
		err         func(*policy.ParentProxy) error
	}
	parentKinds := []parentKind{
		{"parent-407", "dial", func(p *policy.ParentProxy) error { return &parentError{proxy: p, target: "x:443", status: 407} }},
		{"parent-403", "dial", func(p *policy.ParentProxy) error { return &parentError{proxy: p, target: "x:443", status: 403} }},
		{"parent-502", "dial", func(p *policy.ParentProxy) error { return &parentError{proxy: p, target: "x:443", status: 502} }},
		{"parent-refused", "dial", func(p *policy.ParentProxy) error {
			return &parentError{proxy: p, target: "x:443", err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
		}},
		{"parent-garbage", "dial", func(p *policy.ParentProxy) error {
			return &parentError{proxy: p, target: "x:443", err: errors.New("http/1.1: bad status line")}
		}},
		{"parent-loop", "dial", func(p *policy.ParentProxy) error { return &parentError{proxy: p, target: "x:443", err: errLoop} }},
		{"parent-closed-in-handshake", "handshake", func(*policy.ParentProxy) error { return io.EOF }},
		{"client-cert-missing", "handshake", func(*policy.ParentProxy) error {
			return &clientCertError{err: &net.OpError{Op: "remote error", Err: tls.AlertError(alertCertRequired)}}
		}},
		{"incomplete-chain-off", "handshake", func(*policy.ParentProxy) error {
			return &tls.CertificateVerificationError{Err: &incompleteChainError{url: "http://ca.example/i.der", off: true, err: x509.UnknownAuthorityError{Cert: leaf}}}
		}},
		{"incomplete-chain-fetch-failed", "handshake", func(*policy.ParentProxy) error {
			return &tls.CertificateVerificationError{Err: &incompleteChainError{url: "http://ca.example/i.der", fetchErr: errors.New("GET: 404"), err: x509.UnknownAuthorityError{Cert: leaf}}}
		}},
		{"client-cert-rejected", "handshake", func(*policy.ParentProxy) error {
			return &clientCertError{cert: leaf, file: "/etc/tlsbridge/client.pem", err: &net.OpError{Op: "remote error", Err: tls.AlertError(alertBadCertificate)}}
		}},
	}
	for _, tg := range targets {
		for _, k := range parentKinds {
			t.Run(tg.what+"/"+k.name, func(t *testing.T) {
				rule, host, port := ruleFor(tg)
				addr, name := upstreamTarget(rule, host, port)
				ue := &upstreamError{stage: k.stage, host: host, addr: addr, name: name, rule: rule,
					offers: [2]uint16{rule.Upstream.MinVersion, rule.Upstream.MaxVersion}, err: k.err(rule.Upstream.Proxy)}
				v := ue.verdict()
				want := reasonParentProxy
				switch {
				case strings.HasPrefix(k.name, "client"):
					want = reasonClientCert
				case strings.HasPrefix(k.name, "incomplete"):
					want = reasonIncompleteChain
				}
				if v.reason != want {
					t.Errorf("reason %q, want %q", v.reason, want)
				}
				checkHint(t, base, configPath, v.fix, tg.host, rule, func(p *policy.Policy, owner string) *policy.UpstreamTLS {
					if strings.HasPrefix(owner, "listener[") {
						i, _ := strconv.Atoi(owner[len("listener[") : len(owner)-1])
						return &p.Listeners[i].UpstreamTLS
					}
					r := p.Match(host, port)
					return &r.Upstream
				})
			})
		}
		for _, k := range kinds {
			t.Run(tg.what+"/"+k.name, func(t *testing.T) {
				rule, host, port := ruleFor(tg)
				addr, name := upstreamTarget(rule, host, port)
				ue := &upstreamError{stage: k.stage, host: host, addr: addr, name: name, rule: rule,
					offers: [2]uint16{rule.Upstream.MinVersion, rule.Upstream.MaxVersion}, err: k.err}
				fix := ue.verdict().fix
				checkHint(t, base, configPath, fix, tg.host, rule, func(p *policy.Policy, owner string) *policy.UpstreamTLS {
					if strings.HasPrefix(owner, "listener[") {
						i, _ := strconv.Atoi(owner[len("listener[") : len(owner)-1])
						return &p.Listeners[i].UpstreamTLS
					}
					r := p.Match(host, port)
					return &r.Upstream
				})
			})
		}
	}

	// The app-facing hints that name keys.
	for _, tt := range []struct {
		name string
		hint string
	}{
		{"client-version-default", (&clientVersionError{name: "default", lo: tls.VersionTLS10, hi: tls.VersionTLS10, min: tls.VersionTLS12, max: tls.VersionTLS13}).hint()},
		{"client-version-rule", (&clientVersionError{name: "rule[1]", lo: tls.VersionTLS10, hi: tls.VersionTLS11, min: tls.VersionTLS12, max: tls.VersionTLS13}).hint()},
		{"client-version-listener", (&clientVersionError{name: "listener[0]", lo: tls.VersionTLS13, hi: tls.VersionTLS13, min: tls.VersionTLS10, max: tls.VersionTLS12}).hint()},
		{"leaf-key", curveHint(&clientHello{info: &tls.ClientHelloInfo{
			SupportedVersions: []uint16{tls.VersionTLS12},
			CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			SupportedCurves:   []tls.CurveID{tls.CurveP384},
		}}, ca.KeyECDSAP256)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hint == "" {
				t.Fatal("no hint")
			}
			checkHint(t, base, configPath, tt.hint, "", nil, nil)
		})
	}
}

// checkHint applies every key fix names to base, wants the config to load,
// and, when upstreamOf is set, the value to reach the failing target. A
// key the failing rule already sets must be named as a fix of that value,
// never as something to set.
func checkHint(t *testing.T, base *hintModel, configPath, fix, host string, rule *policy.Rule, upstreamOf func(*policy.Policy, string) *policy.UpstreamTLS) {
	t.Helper()
	edits := hintKeyRe.FindAllStringSubmatch(fix, -1)
	named := 0
	for _, e := range edits {
		named++
		if e[3] != "" {
			named++
		}
	}
	named += strings.Count(fix, "`client_key = ") // client_cert's partner, set beside it
	if n := len(anyKeyRe.FindAllString(fix, -1)); n != named {
		t.Errorf("the fix names %d keys, %d of them with where they go: %s", n, named, fix)
	}
	fixes := map[string]bool{}
	for _, m := range fixRe.FindAllStringSubmatch(fix, -1) {
		fixes[m[1]] = true
	}
	var flat [][]string // match, key, value, where
	for _, e := range edits {
		flat = append(flat, []string{e[0], e[1], e[2], e[4]})
		if e[3] != "" {
			flat = append(flat, []string{e[0], e[3], "", e[4]})
		}
	}
	for _, e := range flat {
		key, value, where := e[1], e[2], e[3]
		m := base.clone()
		owner, had := m.apply(t, fix, key, value, where)
		if key == "client_cert" { // set beside it, as the fix says
			if strings.HasPrefix(where, "its [rule.upstream]") {
				m.rules[0].upstream = append(m.rules[0].upstream, `client_key = "client-key.pem"`)
			} else {
				m.apply(t, fix, "client_key", `"client-key.pem"`, where)
			}
		}
		if had && !fixes[key] && key != "ca_files" && value != "" {
			if cur := currentValue(base, owner, key); cur == sampleValue(key, value) {
				t.Errorf("the fix says to set %s = %s in %s, which already has it: %s", key, value, owner, fix)
			}
		}
		if fixes[key] && !had {
			t.Errorf("the fix says to fix %s in %s, which does not set it: %s", key, owner, fix)
		}
		text := m.render()
		p, err := policy.Parse([]byte(text), configPath)
		if err != nil {
			t.Errorf("applying %q (%s) does not load:\n%v\nfix: %s\nconfig:\n%s", e[0], owner, err, fix, text)
			continue
		}
		if upstreamOf == nil {
			continue
		}
		// The edit reaches the target that failed.
		if strings.HasPrefix(where, "its [rule.upstream]") {
			owner = "rule[0]"
		}
		if strings.HasPrefix(rule.Name, "listener[") {
			owner = rule.Name
		}
		u := upstreamOf(p, owner)
		v := strings.Trim(sampleValue(key, value), `"`)
		if o := ownerRe.FindStringSubmatch(owner); o != nil && o[1] == "listener" && (key == "address" || key == "upstream") {
			i, _ := strconv.Atoi(o[2])
			if got := p.Listeners[i].Upstream; got != v {
				t.Errorf("after %q, %s forwards to %q", e[0], owner, got)
			}
			continue
		}
		switch key {
		case "address":
			if u.Address != v {
				t.Errorf("after %q, %s dials %q", e[0], host, u.Address)
			}
		case "server_name":
			if u.ServerName != v {
				t.Errorf("after %q, %s is verified as %q", e[0], host, u.ServerName)
			}
		case "verify":
			if u.Verify {
				t.Errorf("after %q, %s is still verified", e[0], host)
			}
		case "min_tls", "max_tls":
			got := u.MinVersion
			if key == "max_tls" {
				got = u.MaxVersion
			}
			if policy.TLSVersionName(got) != v {
				t.Errorf("after %q, %s has %s %s", e[0], host, key, policy.TLSVersionName(got))
			}
		case "proxy":
			if v == "direct" && u.Proxy != nil {
				t.Errorf("after %q, %s still goes through %s", e[0], host, u.Proxy)
			}
		case "proxy_auth_file":
			if u.Proxy == nil || u.Proxy.Authorization == "" {
				t.Errorf("after %q, %s has no parent credentials", e[0], host)
			}
		case "fetch_intermediates":
			if !u.FetchIntermediates {
				t.Errorf("after %q, %s does not fetch intermediates", e[0], host)
			}
		case "client_cert":
			if u.ClientCert == nil {
				t.Errorf("after %q, %s presents no client certificate", e[0], host)
			}
		case "ca_files":
			if !slices.ContainsFunc(u.CAFiles, func(f string) bool { return filepath.Base(f) == "origin-ca.pem" }) {
				t.Errorf("after %q, %s trusts %v", e[0], host, u.CAFiles)
			}
		}
	}
}

// currentValue is the value of key where owner sets it in m, if it does.
func currentValue(m *hintModel, owner, key string) string {
	var lines []string
	o := ownerRe.FindStringSubmatch(owner)
	switch {
	case o == nil:
		lines = m.tables["upstream"]
	case o[1] == "rule":
		i, _ := strconv.Atoi(o[2])
		lines = m.rules[i].upstream
	default:
		i, _ := strconv.Atoi(o[2])
		lines = append(m.listeners[i].top, m.listeners[i].upstream...)
	}
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, " = "); ok && k == key {
			return v
		}
	}
	return ""
}
