package policy

import (
	"errors"
	"testing"
)

func TestActionText(t *testing.T) {
	tests := []struct {
		a    Action
		text string
	}{
		{ActionAuto, "auto"},
		{ActionBump, "bump"},
		{ActionTunnel, "tunnel"},
		{ActionDeny, "deny"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := tt.a.String(); got != tt.text {
				t.Errorf("String() = %q, want %q", got, tt.text)
			}
			b, err := tt.a.MarshalText()
			if err != nil || string(b) != tt.text {
				t.Errorf("MarshalText() = %q, %v, want %q", b, err, tt.text)
			}
			var got Action
			if err := got.UnmarshalText([]byte(tt.text)); err != nil || got != tt.a {
				t.Errorf("UnmarshalText(%q) = %v, %v, want %v", tt.text, got, err, tt.a)
			}
		})
	}
}

func TestActionBad(t *testing.T) {
	for _, in := range []string{"", "Bump", "allow", "mitm"} {
		t.Run(in, func(t *testing.T) {
			var a Action
			err := a.UnmarshalText([]byte(in))
			if !errors.Is(err, ErrAction) {
				t.Errorf("UnmarshalText(%q) error = %v, want ErrAction", in, err)
			}
		})
	}
	if got, want := Action(9).String(), "Action(9)"; got != want {
		t.Errorf("Action(9).String() = %q, want %q", got, want)
	}
	if _, err := Action(9).MarshalText(); !errors.Is(err, ErrAction) {
		t.Errorf("Action(9).MarshalText() error = %v, want ErrAction", err)
	}
}
