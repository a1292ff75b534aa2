package ca

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a settable clock for the Cache's now hook.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time { return f.t }

func newTestCache(t *testing.T, cfg CacheConfig) (*Cache, *fakeClock) {
	t.Helper()
	a, err := Create(t.TempDir(), Options{Key: KeyECDSAP256}, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	clock := &fakeClock{t: time.Now()}
	c.now = clock.now
	return c, clock
}

func TestCacheExpiry(t *testing.T) {
	tests := []struct {
		name     string
		validity time.Duration
		advance  time.Duration
		remint   bool
	}{
		{"default/fresh", 0, 6 * 24 * time.Hour, false},
		{"default/within-1h-of-expiry", 0, DefaultLeafValidity - 30*time.Minute, true},
		{"default/expired", 0, DefaultLeafValidity + time.Minute, true},
		{"2h/fresh", 2 * time.Hour, time.Hour, false},
		{"2h/within-margin", 2 * time.Hour, 100 * time.Minute, true}, // margin = validity/4 = 30m
		{"2h/expired", 2 * time.Hour, 3 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clock := newTestCache(t, CacheConfig{Validity: tt.validity})
			first, err := c.Get("example.com", KeyECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			clock.t = clock.t.Add(tt.advance)
			second, err := c.Get("example.com", KeyECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			if got := second != first; got != tt.remint {
				t.Errorf("after %v: re-minted = %v, want %v", tt.advance, got, tt.remint)
			}
			wantMints := uint64(1)
			if tt.remint {
				wantMints = 2
				if !second.Leaf.NotAfter.After(first.Leaf.NotAfter) {
					t.Errorf("new leaf NotAfter %v, not after the old %v", second.Leaf.NotAfter, first.Leaf.NotAfter)
				}
			}
			if got := c.Stats(); got.Mints != wantMints || got.Len != 1 {
				t.Errorf("Stats() = %+v, want Mints %d, Len 1", got, wantMints)
			}
		})
	}
}

func TestCacheExpiredCA(t *testing.T) {
	c, clock := newTestCache(t, CacheConfig{})
	clock.t = c.Authority().Cert.NotAfter.Add(time.Second)
	if _, err := c.Get("example.com", KeyRSA2048); !errors.Is(err, ErrCAExpired) {
		t.Errorf("Get with an expired CA: err = %v, want ErrCAExpired", err)
	}
}

func TestLeafClampedToCA(t *testing.T) {
	c, clock := newTestCache(t, CacheConfig{})
	clock.t = c.Authority().Cert.NotAfter.Add(-24 * time.Hour)
	cert, err := c.Get("example.com", KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cert.Leaf.NotAfter, c.Authority().Cert.NotAfter; got.After(want) {
		t.Errorf("leaf NotAfter %v is after the CA's %v", got, want)
	}
}
