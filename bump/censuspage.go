package bump

import (
	"cmp"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tlsbridge/tlsbridge/ca"
)

// CensusPage is what the census page shows beside the census: the build
// and the CA apps must trust.
type CensusPage struct {
	// Version is the line "tlsbridge version" prints.
	Version string
	// CA is the authority whose certificate /ca.pem serves; its
	// fingerprint is shown. If nil, none is.
	CA *ca.Authority
}

// CensusHandler serves the census on the admin listener: GET / is the page
// (server-rendered HTML, no external assets, usable without JavaScript),
// /census.json and /census.csv the same data for scripts and spreadsheets.
// Nothing on them is secret: app identities, host names and ports, TLS
// versions, and the cause and fix of failures; never a URL, a query, a
// header, a password or a key.
func (s *Server) CensusHandler(page CensusPage) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s.servePage(w, r, page)
	})
	mux.HandleFunc("GET /census.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.census.view())
	})
	mux.HandleFunc("GET /census.csv", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="tlsbridge-census.csv"`)
		w.Header().Set("Cache-Control", "no-store")
		_ = writeCensusCSV(w, s.census.view())
	})
	return mux
}

// censusCSVHeader names the columns of /census.csv: one row per app and
// host.
var censusCSVHeader = []string{"app", "kind", "pid", "uid", "user", "exe", "address", "host", "port",
	"first_seen", "last_seen", "connections", "max_offered_tls", "client_tls", "client_cipher", "upstream_tls",
	"actions", "failures", "failing", "last_failure_reason", "last_failure_fix"}

// writeCensusCSV writes v as CSV. Host names, process names, executables
// and user names come from apps; a spreadsheet would run a cell such as
// =cmd|' /C calc'!A0 as a formula, so text cells go through csvText.
func writeCensusCSV(w io.Writer, v censusView) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(censusCSVHeader)
	for _, a := range v.Apps {
		pid, uid := "", ""
		if a.PID != 0 {
			pid = strconv.Itoa(a.PID)
		}
		if a.UID != nil {
			uid = strconv.Itoa(*a.UID)
		}
		for _, h := range a.Hosts {
			reason, fix := "", ""
			if h.LastFailure != nil {
				reason, fix = h.LastFailure.Reason, h.LastFailure.Fix
			}
			_ = cw.Write([]string{csvText(a.App), a.Kind, pid, uid, csvText(a.User), csvText(a.Exe), csvText(a.Addr),
				csvText(h.Host), strconv.Itoa(h.Port),
				h.FirstSeen.UTC().Format(time.RFC3339), h.LastSeen.UTC().Format(time.RFC3339),
				strconv.FormatUint(h.Connections, 10), h.MaxOffered, h.ClientTLS, h.ClientCipher, h.UpstreamTLS,
				csvText(countsText(h.Actions)), csvText(countsText(h.Failures)), strconv.FormatBool(h.Failing),
				csvText(reason), csvText(fix)})
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvText neutralizes a text cell a spreadsheet would take for a formula:
// one that starts with =, +, -, @, a tab or a carriage return gets a
// leading single quote (OWASP, "CSV Injection"). The numbers tlsbridge
// writes itself (pid, uid, port, counts) do not go through it.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// countsText writes counts as "bump=3 tunnel=1", keys sorted.
func countsText(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

//go:embed census.html
var censusHTML string

var censusTmpl = template.Must(template.New("census").Funcs(template.FuncMap{
	"ago":    ago,
	"counts": countsText,
	"badge":  seriesClass,
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
}).Parse(censusHTML))

// pageData is the page's template input.
type pageData struct {
	censusView
	Version     string
	Uptime      string
	Fingerprint string
	Sort        string
	Chart       chartSVG
}

// chartSVG is the chart's bars, laid out here so the template only draws.
type chartSVG struct {
	Width, Height int
	Max           uint64
	Bars          []chartBar
	Legend        []chartLegend
}

type chartBar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

type chartLegend struct{ Series, Class string }

// Page sort orders (?sort=): legacy first (the default: what to migrate
// next), by name, by connections, by last seen.
var pageSorts = map[string]func(a, b censusAppView) int{
	"tls": func(a, b censusAppView) int {
		return cmp.Or(cmp.Compare(sortVersion(a.maxOffered), sortVersion(b.maxOffered)), b.LastSeen.Compare(a.LastSeen))
	},
	"app":   func(a, b censusAppView) int { return cmp.Compare(a.App, b.App) },
	"conns": func(a, b censusAppView) int { return cmp.Compare(b.Connections, a.Connections) },
	"last":  func(a, b censusAppView) int { return b.LastSeen.Compare(a.LastSeen) },
}

// sortVersion orders versions, oldest first, none last.
func sortVersion(v uint16) int {
	if v != 0 {
		return int(v)
	}
	return 1 << 16
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request, page CensusPage) {
	v := s.census.view()
	sortBy := r.URL.Query().Get("sort")
	if pageSorts[sortBy] == nil {
		sortBy = "tls"
	}
	slices.SortStableFunc(v.Apps, pageSorts[sortBy])
	d := pageData{censusView: v, Version: page.Version, Sort: sortBy,
		Uptime: time.Since(s.started).Round(time.Second).String(), Chart: layoutChart(v.Chart)}
	if page.CA != nil {
		d.Fingerprint = page.CA.Fingerprint()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Inline style and the one inline script; nothing is loaded from
	// anywhere.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self'")
	if err := censusTmpl.Execute(w, d); err != nil {
		s.log.WithError(err).Warn("census page")
	}
}

// layoutChart stacks each minute's connections per series into bars.
func layoutChart(c censusChartView) chartSVG {
	const w, h, bw = 600, 120, 10
	out := chartSVG{Width: w, Height: h}
	n := 0
	for _, s := range c.Series {
		n = max(n, len(c.Counts[s]))
		out.Legend = append(out.Legend, chartLegend{Series: s, Class: seriesClass(s)})
	}
	totals := make([]uint64, n)
	for _, s := range c.Series {
		for i, x := range c.Counts[s] {
			totals[i] += x
		}
	}
	out.Max = max(slices.Max(append(totals, 1)), 1)
	for i := 0; i < n; i++ {
		y := h
		for _, s := range c.Series {
			x := c.Counts[s][i]
			if x == 0 {
				continue
			}
			bh := max(int(float64(x)/float64(out.Max)*float64(h-4)), 1)
			y -= bh
			t := c.Start.Add(time.Duration(i) * time.Minute).Format("15:04")
			out.Bars = append(out.Bars, chartBar{X: i * bw, Y: y, W: bw - 1, H: bh, Class: seriesClass(s),
				Title: fmt.Sprintf("%s UTC: %d connection%s with TLS %s", t, x, map[bool]string{true: "", false: "s"}[x == 1], s)})
		}
	}
	return out
}

// seriesClass is the CSS class of a version label (versionLabel), for
// the chart and the badges: "1.0" is b10, "ssl3.0" b30, and "none",
// "other" or anything else bnone.
func seriesClass(s string) string {
	switch s {
	case "1.0", "1.1", "1.2", "1.3":
		return "b" + strings.ReplaceAll(s, ".", "")
	case "ssl3.0":
		return "b30"
	}
	return "bnone"
}

// ago says how long ago t was, in the largest whole unit.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h ago"
	}
	return t.UTC().Format("2006-01-02")
}
