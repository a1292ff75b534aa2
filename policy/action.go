package policy

import "fmt"

// Action says what the proxy does with a CONNECT to a matching host.
type Action uint8

const (
	// ActionAuto bumps only when the client's ClientHello cannot meet the
	// upstream minimum version, and otherwise tunnels untouched, so modern
	// clients keep end-to-end TLS. A client that offers a version equal to
	// the upstream minimum is tunneled. It is the action of [Policy.Default].
	ActionAuto Action = iota
	// ActionBump always intercepts: the client's TLS ends at the proxy and the
	// proxy opens its own TLS connection upstream.
	ActionBump
	// ActionTunnel always passes the bytes through untouched.
	ActionTunnel
	// ActionDeny refuses the CONNECT with 403.
	ActionDeny
)

var actionNames = [...]string{
	ActionAuto:   "auto",
	ActionBump:   "bump",
	ActionTunnel: "tunnel",
	ActionDeny:   "deny",
}

// String returns the config spelling of a: "auto", "bump", "tunnel" or
// "deny"; "Action(N)" for a value outside the set.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// MarshalText implements [encoding.TextMarshaler]; it fails for a value
// outside the set, so a bad Action never reaches a file or a log as text.
func (a Action) MarshalText() ([]byte, error) {
	if int(a) >= len(actionNames) {
		return nil, fmt.Errorf("marshal %v: %w", a, ErrAction)
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] for "auto", "bump",
// "tunnel" and "deny" (exact, lower-case spelling).
func (a *Action) UnmarshalText(text []byte) error {
	for i, name := range actionNames {
		if string(text) == name {
			*a = Action(i)
			return nil
		}
	}
	return fmt.Errorf("%q is not an action (want auto, bump, tunnel or deny): %w", text, ErrAction)
}
