package bump

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// ownComm is this process's name as /proc shows it (the test binary's).
func ownComm(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestAppResolverFindsOwnProcess: a connection dialled by this process is
// attributed to it, by name and PID, from /proc.
func TestAppResolverFindsOwnProcess(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		defer ln.Close()
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()

		r := newAppResolver(lookupSocketProcess)
		defer r.close()
		l := r.note(server)
		if l == nil {
			t.Fatalf("%s: a loopback connection was not noted", network)
		}
		got := make(chan appID, 1)
		r.identify(l, appID{Kind: appAddress, Name: "fallback"}, func(id appID) { got <- id })
		select {
		case id := <-got:
			if id.Kind != appProcess || id.Name != ownComm(t) || id.PID != os.Getpid() || id.UID != os.Getuid() {
				t.Fatalf("%s: identity %+v, want process %q pid %d uid %d", network, id, ownComm(t), os.Getpid(), os.Getuid())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no identity within 5 s", network)
		}
	}
}

// TestCensusNamesTheProcess: through the proxy, a TLS 1.0 app in this
// process is in the census under this process's name and PID.
func TestCensusNamesTheProcess(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	p := startProxy(t, pinConfig(o, "bumped.test", "bump", ""))
	if resp, body := get(t, p.legacyClient(t, clientOpts{version: tls.VersionTLS10}), "https://bumped.test/"); resp.StatusCode != 200 {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	v := waitCensus(t, p, 1)
	if len(v.Apps) != 1 {
		t.Fatalf("apps %+v, want one", v.Apps)
	}
	a := v.Apps[0]
	if a.Kind != appProcess || a.App != ownComm(t) || a.PID != os.Getpid() || a.MaxOffered != "1.0" || a.Exe == "" {
		t.Fatalf("app %+v, want process %q pid %d offering TLS 1.0", a, ownComm(t), os.Getpid())
	}
	if h := a.Hosts[0]; h.Host != "bumped.test" || h.ClientTLS != "1.0" || h.UpstreamTLS != "1.3" || h.Actions["bump"] != 1 {
		t.Fatalf("host %+v, want bumped.test, TLS 1.0 in, 1.3 out, one bump", h)
	}

	// A reload (SIGHUP) swaps the snapshot; the census stays.
	p.srv.SetPolicy(p.srv.Policy())
	if v := p.srv.census.view(); v.Connections != 1 || len(v.Apps) != 1 {
		t.Fatalf("after SetPolicy: %d connections, %d apps; want the census kept", v.Connections, len(v.Apps))
	}
}
