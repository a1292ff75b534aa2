package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
)

// summary is one run's result: the text report and the -json line.
type summary struct {
	Label  string `json:"label,omitempty"`
	Mode   string `json:"mode"` // new-conn, keep-alive, bulk or idle
	TLS    string `json:"tls"`
	Suites string `json:"suites"`
	Resume string `json:"resume"` // off, ticket or id
	// With -resume: the app's handshakes, those where it had a session to
	// offer (all but each app's first with a host), how many resumed, and
	// resumed ÷ offered.
	Handshakes      int64   `json:"handshakes,omitempty"`
	Offered         int64   `json:"offered,omitempty"`
	Resumed         int64   `json:"resumed,omitempty"`
	ResumedFraction float64 `json:"resumed_fraction,omitempty"`
	Close           bool    `json:"connection_close,omitempty"` // -close: each request carried "Connection: close"
	Hosts           int     `json:"hosts,omitempty"`
	Clients         int     `json:"clients"`
	Seconds         float64 `json:"seconds"`
	Ops             int64   `json:"ops"`
	Errors          int64   `json:"errors"`
	FirstError      string  `json:"first_error,omitempty"`
	OpsPerSec       float64 `json:"ops_per_sec"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	CPUSeconds      float64 `json:"proxy_cpu_s"`
	CPUPerOpUs      float64 `json:"proxy_cpu_per_op_us,omitempty"`
	Bytes           int64   `json:"bytes,omitempty"`
	MBPerSec        float64 `json:"mb_per_s,omitempty"`
	CPUSecPerGiB    float64 `json:"proxy_cpu_s_per_gib,omitempty"`
	IdleConns       int     `json:"idle_conns,omitempty"`
	RSSBeforeKiB    int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB     int64   `json:"rss_after_kib,omitempty"`
	RSSPerConnKiB   float64 `json:"rss_per_conn_kib,omitempty"`
	// What the app negotiated with the proxy, e.g. "TLS 1.0" and
	// "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", and the leaf's key type.
	Version string `json:"negotiated_tls,omitempty"`
	Cipher  string `json:"cipher,omitempty"`
	LeafKey string `json:"leaf_key,omitempty"`
}

func newSummary(o *options, mode string) *summary {
	return &summary{
		Label: o.label, Mode: mode, TLS: tlsName(o.version), Suites: o.suiteSet,
		Resume: o.resume.String(), Close: o.close, Hosts: o.hosts, Clients: o.clients,
	}
}

func (s *summary) setState(st *tls.ConnectionState) {
	if st == nil {
		return
	}
	s.Version = tls.VersionName(st.Version)
	s.Cipher = tls.CipherSuiteName(st.CipherSuite)
	if len(st.PeerCertificates) == 0 && strings.HasPrefix(s.Cipher, "TLS_RSA_") {
		// OpenSSL's client (-resume id) reports no certificates; RSA key
		// exchange encrypts to the leaf's RSA key (RFC 5246 7.4.7.1).
		s.LeafKey = "RSA"
	}
	if len(st.PeerCertificates) > 0 {
		switch st.PeerCertificates[0].PublicKeyAlgorithm {
		case x509.RSA:
			s.LeafKey = "RSA"
		case x509.ECDSA:
			s.LeafKey = "ECDSA"
		default:
			s.LeafKey = st.PeerCertificates[0].PublicKeyAlgorithm.String()
		}
	}
}

func (s *summary) setCPU(o *options, before cpuSnapshot) error {
	if before == nil {
		return nil
	}
	after, err := takeCPU(o.pids)
	if err != nil {
		return fmt.Errorf("proxy CPU after the run: %w", err)
	}
	s.CPUSeconds = cpuSince(before, after).Seconds()
	return nil
}

func (s *summary) writeJSON(w io.Writer) error {
	// Round so the line stays readable; NaN/Inf cannot occur (guards above).
	r := func(x *float64, digits float64) { *x = math.Round(*x*digits) / digits }
	r(&s.Seconds, 1000)
	r(&s.CPUSeconds, 1000)
	r(&s.OpsPerSec, 10)
	r(&s.CPUPerOpUs, 10)
	r(&s.MBPerSec, 10)
	r(&s.CPUSecPerGiB, 1000)
	r(&s.RSSPerConnKiB, 10)
	r(&s.ResumedFraction, 1000)
	return json.NewEncoder(w).Encode(s)
}

func (s *summary) writeText(w io.Writer) {
	if s.Label != "" {
		fmt.Fprintf(w, "label       %s\n", s.Label)
	}
	mode := s.Mode
	if s.Close {
		mode += " (Connection: close)"
	}
	fmt.Fprintf(w, "mode        %s, TLS %s, suites %s, %d clients, %.1f s\n", mode, s.TLS, s.Suites, s.Clients, s.Seconds)
	if s.Cipher != "" {
		fmt.Fprintf(w, "negotiated  %s %s, %s leaf\n", s.Version, s.Cipher, s.LeafKey)
	}
	switch s.Mode {
	case "idle":
		fmt.Fprintf(w, "idle        %d bumped connections held; proxy RSS %d KiB -> %d KiB: %.1f KiB per connection\n",
			s.IdleConns, s.RSSBeforeKiB, s.RSSAfterKiB, s.RSSPerConnKiB)
		return
	case "bulk":
		fmt.Fprintf(w, "bulk        %d bytes in %.2f s: %.1f MB/s\n", s.Bytes, s.Seconds, s.MBPerSec)
		if s.CPUSeconds > 0 {
			fmt.Fprintf(w, "proxy CPU   %.2f s total, %.2f s/GiB\n", s.CPUSeconds, s.CPUSecPerGiB)
		}
	default:
		unit := map[string]string{"new-conn": "conn", "keep-alive": "req"}[s.Mode]
		fmt.Fprintf(w, "throughput  %.0f %s/s (%d ok, %d errors)\n", s.OpsPerSec, unit, s.Ops, s.Errors)
		fmt.Fprintf(w, "latency     p50 %.3f ms  p99 %.3f ms\n", s.P50Ms, s.P99Ms)
		if s.CPUSeconds > 0 {
			fmt.Fprintf(w, "proxy CPU   %.2f s total, %.1f µs/%s\n", s.CPUSeconds, s.CPUPerOpUs, unit)
		}
		if s.Resume != "off" {
			fmt.Fprintf(w, "resumed     %d of %d handshakes that offered a session (%.1f%%, by %s; %d handshakes)\n",
				s.Resumed, s.Offered, 100*s.ResumedFraction, s.Resume, s.Handshakes)
		}
	}
	if s.FirstError != "" {
		fmt.Fprintf(w, "first error %s\n", s.FirstError)
	}
}
