package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"
)

// bulk downloads o.path (o.bulk bytes) over one connection.
func bulk(ctx context.Context, o *options, base *tls.Config) (*summary, error) {
	target := hostN(o.target, 0)
	conn, br, err := dial(ctx, o, base, target)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cpu0, err := startCPU(o)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(o.duration + 5*time.Minute))
	t0 := time.Now()
	n, err := get(conn, br, target, o.path, o.close)
	elapsed := time.Since(t0)
	if err == nil && n != o.bulk {
		err = fmt.Errorf("GET %s: %d bytes, want %d (-bulk)", o.path, n, o.bulk)
	}
	s := newSummary(o, "bulk")
	s.Clients = 1
	s.Seconds = elapsed.Seconds()
	s.Bytes = n
	if err != nil {
		s.Errors, s.FirstError = 1, err.Error()
	} else {
		s.Ops = 1
		s.OpsPerSec = 1 / elapsed.Seconds()
	}
	s.MBPerSec = float64(n) / 1e6 / elapsed.Seconds()
	s.P50Ms, s.P99Ms = ms(elapsed), ms(elapsed)
	st := conn.ConnectionState()
	s.setState(&st)
	if err := s.setCPU(o, cpu0); err != nil {
		return nil, err
	}
	if n > 0 && s.CPUSeconds > 0 {
		s.CPUSecPerGiB = s.CPUSeconds / (float64(n) / (1 << 30))
	}
	return s, nil
}
