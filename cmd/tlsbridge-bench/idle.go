package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// holdIdle opens o.idle connections, makes one request on each, then
// measures the proxy's resident memory per idle connection.
func holdIdle(ctx context.Context, o *options, base *tls.Config) (*summary, error) {
	if len(o.pids) == 0 {
		return nil, errors.New("-idle needs -pid (the proxy's PID) to read its memory")
	}
	rss0, err := treeRSS(o.pids)
	if err != nil {
		return nil, err
	}
	conns := make([]*tls.Conn, 0, o.idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	s := newSummary(o, "idle")
	t0 := time.Now()
	for i := range o.idle {
		target := o.target
		if o.hosts > 0 {
			target = hostN(o.target, i%o.hosts)
		}
		c, br, err := dial(ctx, o, base, target)
		if err == nil {
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = get(c, br, target, o.path, false)
			c.SetDeadline(time.Time{})
		}
		if err != nil {
			return nil, fmt.Errorf("idle connection %d: %w", i, err)
		}
		if i == 0 {
			st := c.ConnectionState()
			s.setState(&st)
		}
	}
	// Let the proxy settle (GC, returned buffers) before reading its RSS.
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rss1, err := treeRSS(o.pids)
	if err != nil {
		return nil, err
	}
	s.Seconds = time.Since(t0).Seconds()
	s.Ops = int64(o.idle)
	s.IdleConns = o.idle
	s.RSSBeforeKiB, s.RSSAfterKiB = rss0>>10, rss1>>10
	s.RSSPerConnKiB = float64(rss1-rss0) / 1024 / float64(o.idle)
	return s, nil
}
