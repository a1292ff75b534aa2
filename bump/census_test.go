package bump

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestCensusBoundsAndEviction: the census keeps at most its capacity of app
// × host rows; a new row evicts the least recently seen one and counts it;
// a row seen again moves to the front and keeps its counts.
func TestCensusBoundsAndEviction(t *testing.T) {
	c := newCensus(3, nil)
	app := func(name string) appID { return appID{Kind: appAddress, Name: name, Addr: name} }
	obs := func(host string, v uint16) censusObs {
		return censusObs{at: time.Now(), host: host, port: 443, action: "bump", offered: v, clientTLS: v}
	}
	c.add(app("a"), obs("one.test", tls.VersionTLS10))
	c.add(app("a"), obs("two.test", tls.VersionTLS10))
	c.add(app("b"), obs("one.test", tls.VersionTLS12))
	c.add(app("a"), obs("one.test", tls.VersionTLS10))   // seen again: now the newest
	c.add(app("c"), obs("three.test", tls.VersionTLS11)) // evicts a → two.test, the oldest
	c.add(app("d"), obs("four.test", tls.VersionTLS13))  // evicts b → one.test

	v := c.view()
	if v.Rows != 3 || v.Evicted != 2 || v.Capacity != 3 || v.Connections != 6 {
		t.Fatalf("rows %d evicted %d capacity %d connections %d, want 3, 2, 3, 6", v.Rows, v.Evicted, v.Capacity, v.Connections)
	}
	got := map[string]uint64{}
	for _, a := range v.Apps {
		for _, h := range a.Hosts {
			got[a.App+"→"+h.Host] = h.Connections
		}
	}
	want := map[string]uint64{"a→one.test": 2, "c→three.test": 1, "d→four.test": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if v.NeedTLS10 != 1 || v.NeedTLS11 != 1 {
		t.Fatalf("need 1.0: %d, 1.1: %d; want 1 and 1", v.NeedTLS10, v.NeedTLS11)
	}

	// Many more rows than the capacity: the bound holds.
	for i := range 1000 {
		c.add(app("flood"), obs(fmt.Sprintf("h%d.test", i), tls.VersionTLS12))
	}
	if v := c.view(); v.Rows != 3 || v.Evicted != 1002 {
		t.Fatalf("after 1000 more hosts: rows %d evicted %d, want 3 and 1002", v.Rows, v.Evicted)
	}

	// The chart has a minute's connections in its last bucket.
	var total uint64
	for _, s := range v.Chart.Series {
		cs := v.Chart.Counts[s]
		if len(cs) != censusMinutes {
			t.Fatalf("series %s has %d minutes, want %d", s, len(cs), censusMinutes)
		}
		total += cs[len(cs)-1]
	}
	if total != 6 {
		t.Fatalf("chart's last minute counts %d connections, want 6", total)
	}
}

// waitCensus polls the census until it has counted n connections: a
// connection is counted when it ends, after its relay, in its own goroutine.
func waitCensus(t *testing.T, p *proxy, n uint64) censusView {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := p.srv.census.view()
		if v.Connections >= n {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("census counted %d connections, want %d", v.Connections, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCensusPageHasNoSecrets: an app authenticated as alice fetches a URL
// with a query through the proxy, and an upstream fails; the page, the JSON
// and the CSV show alice, the host, TLS 1.0 and the failure's fix, and
// never the password, the path or query, or a key.
func TestCensusPageHasNoSecrets(t *testing.T) {
	o := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	untrusted := newOrigin(t, tls.VersionTLS12, tls.VersionTLS13)
	const password = "pa55-Secret-Word"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), authTestCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, caFiles(o.caFile)+pinRule("bumped.test", "bump", o.addr, originName)+
		pinRule("untrusted.test", "bump", untrusted.addr, originName)+
		fmt.Sprintf("\n[auth]\nusers_file = %q\n", users))

	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	tr := &http.Transport{
		Proxy:             http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr, User: url.UserPassword("alice", password)}),
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, RootCAs: roots}, //nolint:gosec // the test plays a legacy app
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	const secretPath, secretQuery = "/private-report", "token=query-Secret-Value"
	if resp, body := get(t, client, "https://bumped.test"+secretPath+"?"+secretQuery); resp.StatusCode != http.StatusOK {
		t.Fatalf("bumped.test: status %d, body %q", resp.StatusCode, body)
	}
	if resp, body := get(t, client, "https://untrusted.test/?"+secretQuery); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("untrusted.test: status %d, body %q, want 502", resp.StatusCode, body)
	}
	v := waitCensus(t, p, 2)
	if len(v.Apps) != 1 || v.Apps[0].App != "alice" || v.Apps[0].Kind != appUser || v.Apps[0].MaxOffered != "1.0" {
		t.Fatalf("apps = %+v, want alice (user) offering TLS 1.0", v.Apps)
	}
	if v.NeedTLS10 != 1 || v.Failing != 1 || len(v.Failures) != 1 || v.Failures[0].Reason != reasonUnknownAuthority {
		t.Fatalf("need 1.0 %d, failing %d, failures %+v; want 1, 1 and one unknown_authority", v.NeedTLS10, v.Failing, v.Failures)
	}

	admin := httptest.NewServer(p.srv.CensusHandler(CensusPage{Version: "tlsbridge test", CA: p.ca}))
	defer admin.Close()
	for _, path := range []string{"/", "/census.json", "/census.csv"} {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		for _, want := range []string{"alice", "bumped.test", "untrusted.test", "ca_files"} {
			if !strings.Contains(page, want) {
				t.Errorf("GET %s: %q missing", path, want)
			}
		}
		for _, secret := range []string{password, secretPath, secretQuery, "query-Secret", "PRIVATE KEY", string(hash)} {
			if strings.Contains(page, secret) {
				t.Errorf("GET %s shows %q", path, secret)
			}
		}
		if path == "/" {
			for _, want := range []string{"1 app still needs TLS 1.0; 1 failing", `class="badge b10"`, p.ca.Fingerprint(), `href="/ca.pem"`, "<svg"} {
				if !strings.Contains(page, want) {
					t.Errorf("page: %q missing", want)
				}
			}
			if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
				t.Errorf("page refers to an external address:\n%s", page)
			}
		}
	}
}

// TestCensusCSVNeutralizesFormulas: app-controlled text (host, process
// and user names, executable) that a spreadsheet would run as a formula
// comes out of /census.csv with a leading single quote.
func TestCensusCSVNeutralizesFormulas(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"},
		{"+SUM(1,2)", "'+SUM(1,2)"},
		{"-2+3", "'-2+3"},
		{"@SUM(1)", "'@SUM(1)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"example.com", "example.com"},
		{"", ""},
	} {
		if got := csvText(tc.in); got != tc.want {
			t.Errorf("csvText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	c := newCensus(10, nil)
	evil := "=cmd|' /C calc'!A0"
	c.add(appID{Kind: appProcess, Name: "+calc", UID: 1000, User: "@admin", Exe: "-/bin/x", PID: 7, Addr: "127.0.0.1"},
		censusObs{at: time.Now(), host: evil, port: 443, action: "bump", offered: tls.VersionTLS10, clientTLS: tls.VersionTLS10})
	var b strings.Builder
	if err := writeCensusCSV(&b, c.view()); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("CSV %q: %d records, %v; want a header and one row", b.String(), len(recs), err)
	}
	row := map[string]string{}
	for i, col := range recs[0] {
		row[col] = recs[1][i]
	}
	want := map[string]string{"host": "'" + evil, "app": "'+calc", "user": "'@admin", "exe": "'-/bin/x", "pid": "7", "uid": "1000"}
	for col, w := range want {
		if row[col] != w {
			t.Errorf("column %s = %q, want %q", col, row[col], w)
		}
	}
	for col, cell := range row {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Errorf("column %s = %q starts a formula", col, cell)
		}
	}
}

// TestCensusSSL3IsLegacy: an app whose highest offered version is SSL 3.0
// is legacy and shown as ssl3.0, and sorts before TLS 1.0 on the page.
func TestCensusSSL3IsLegacy(t *testing.T) {
	c := newCensus(10, nil)
	obs := func(v uint16) censusObs {
		return censusObs{at: time.Now(), host: "old.test", port: 443, action: "tunnel", offered: v}
	}
	c.add(appID{Kind: appAddress, Name: "ssl3-app"}, obs(0x0300))
	c.add(appID{Kind: appAddress, Name: "tls10-app"}, obs(tls.VersionTLS10))
	c.add(appID{Kind: appAddress, Name: "tls12-app"}, obs(tls.VersionTLS12))
	v := c.view()
	got := map[string]censusAppView{}
	for _, a := range v.Apps {
		got[a.App] = a
	}
	for name, want := range map[string]struct {
		label  string
		legacy bool
	}{"ssl3-app": {"ssl3.0", true}, "tls10-app": {"1.0", true}, "tls12-app": {"1.2", false}} {
		if a := got[name]; a.MaxOffered != want.label || a.Legacy != want.legacy {
			t.Errorf("%s: max offered %q legacy %v, want %q and %v", name, a.MaxOffered, a.Legacy, want.label, want.legacy)
		}
	}
	slices.SortStableFunc(v.Apps, pageSorts["tls"])
	if v.Apps[0].App != "ssl3-app" || v.Apps[2].App != "tls12-app" {
		t.Errorf("sorted by TLS: %s, %s, %s; want ssl3-app first, tls12-app last", v.Apps[0].App, v.Apps[1].App, v.Apps[2].App)
	}
}

// TestCensusViewWhileAdding: views built while connections are added see
// consistent copies (run with -race: the view reads no row after the lock
// is released).
func TestCensusViewWhileAdding(t *testing.T) {
	c := newCensus(8, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			o := censusObs{at: time.Now(), host: fmt.Sprintf("h%d.test", i%12), port: 443, action: "bump",
				offered: tls.VersionTLS10, clientTLS: tls.VersionTLS10}
			if i%3 == 0 {
				o.side, o.reason = sideUpstream, reasonUnknownAuthority
			}
			c.add(appID{Kind: appAddress, Name: fmt.Sprintf("app%d", i%5)}, o)
		}
	}()
	for {
		select {
		case <-done:
			if v := c.view(); v.Connections != 2000 || v.Rows != 8 {
				t.Fatalf("connections %d rows %d, want 2000 and 8", v.Connections, v.Rows)
			}
			return
		default:
		}
		v := c.view()
		for _, a := range v.Apps {
			for _, h := range a.Hosts {
				var n uint64
				for _, x := range h.Actions {
					n += x
				}
				if n != h.Connections {
					t.Fatalf("%s → %s: actions %v count %d, connections %d", a.App, h.Host, h.Actions, n, h.Connections)
				}
			}
		}
	}
}
