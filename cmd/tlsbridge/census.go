package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// censusTimeout bounds the request to the running instance.
const censusTimeout = 10 * time.Second

// censusDoc is the part of /census.json that "tlsbridge census" prints; the
// command is a client of that document like any script.
type censusDoc struct {
	Connections uint64 `json:"connections"`
	Rows        int    `json:"rows"`
	Capacity    int    `json:"capacity"`
	Evicted     uint64 `json:"evicted"`
	NeedTLS10   int    `json:"apps_need_tls10"`
	NeedTLS11   int    `json:"apps_need_tls11"`
	Failing     int    `json:"apps_failing"`
	Apps        []struct {
		App        string `json:"app"`
		Kind       string `json:"kind"`
		PID        int    `json:"pid"`
		User       string `json:"user"`
		MaxOffered string `json:"max_offered_tls"`
		Hosts      []struct {
			Host        string    `json:"host"`
			Port        int       `json:"port"`
			Connections uint64    `json:"connections"`
			MaxOffered  string    `json:"max_offered_tls"`
			ClientTLS   string    `json:"client_tls"`
			UpstreamTLS string    `json:"upstream_tls"`
			LastSeen    time.Time `json:"last_seen"`
			Failing     bool      `json:"failing"`
		} `json:"hosts"`
	} `json:"apps"`
	Failures []struct {
		Time   time.Time `json:"time"`
		App    string    `json:"app"`
		Host   string    `json:"host"`
		Port   int       `json:"port"`
		Reason string    `json:"reason"`
		Fix    string    `json:"fix"`
	} `json:"recent_failures"`
}

// runCensus is "tlsbridge census": the census of the running instance,
// read from its admin listener, as a table.
func runCensus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("census", stderr)
	fs.StringVar(&cf.config, "config", "", "config file of the running tlsbridge (default: ./config.toml if present, else built-in defaults)")
	if err := parseFlags(fs, args, 0); err != nil {
		return ignoreHelp(err)
	}
	pol, err := cf.loadPolicy()
	if err != nil {
		return err
	}
	if pol.Admin.Listen == "" {
		return fmt.Errorf(`census: the config has no [admin] listen, so the running tlsbridge serves no census; set listen = "127.0.0.1:3129" under [admin], restart tlsbridge, then run tlsbridge census again`)
	}
	url := "http://" + adminDialAddr(pol.Admin.Listen) + "/census.json"
	ctx, cancel := context.WithTimeout(ctx, censusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	// The admin listener is local: never through a proxy from the
	// environment (tlsbridge itself would refuse it with 508).
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("census: %w (is tlsbridge running with this config? start it with tlsbridge run -config PATH)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("census: GET %s: %s (is that tlsbridge's admin listener, and is this tlsbridge new enough to have a census?)", url, resp.Status)
	}
	var doc censusDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&doc); err != nil {
		return fmt.Errorf("census: GET %s: %w", url, err)
	}
	return writeCensusTable(stdout, &doc, time.Now())
}

// adminDialAddr turns a listen address into one to dial: an unspecified
// host (":3129", "0.0.0.0:3129", "[::]:3129") is reached on loopback.
func adminDialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// writeCensusTable prints the headline, one line per app and host, and the
// recent failures with their fix.
func writeCensusTable(w io.Writer, d *censusDoc, now time.Time) error {
	fmt.Fprintf(w, "%d apps still need TLS 1.0, %d TLS 1.1; %d failing (%d connections, %d of %d rows, %d evicted)\n\n",
		d.NeedTLS10, d.NeedTLS11, d.Failing, d.Connections, d.Rows, d.Capacity, d.Evicted)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tIDENTITY\tHIGHEST TLS\tHOST\tAPP TLS\tUPSTREAM TLS\tCONNS\tLAST SEEN\tSTATUS")
	for _, a := range d.Apps {
		id := a.Kind
		if a.PID != 0 {
			id += fmt.Sprintf(" pid %d", a.PID)
		}
		if a.User != "" {
			id += " " + a.User
		}
		for _, h := range a.Hosts {
			status := "ok"
			if h.Failing {
				status = "FAILING"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%d\t%s\t%s\t%d\t%s ago\t%s\n", a.App, id, a.MaxOffered, h.Host, h.Port,
				h.ClientTLS, h.UpstreamTLS, h.Connections, now.Sub(h.LastSeen).Round(time.Second), status)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Failures) > 0 {
		fmt.Fprintln(w, "\nrecent failures:")
		for _, f := range d.Failures {
			fmt.Fprintf(w, "  %s %s → %s:%d: %s\n    fix: %s\n", f.Time.UTC().Format(time.TimeOnly), f.App, f.Host, f.Port,
				f.Reason, strings.TrimSpace(f.Fix))
		}
	}
	return nil
}
