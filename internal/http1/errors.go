package http1

import "fmt"

// Statuses a *Error asks the intermediary to answer with.
const (
	StatusBadRequest          = 400
	StatusHeadTooLarge        = 431
	StatusNotImplemented      = 501
	StatusVersionNotSupported = 505
	StatusBadGateway          = 502
)

// Error is a message tlsbridge will not forward: malformed, ambiguous or too
// large. Status is what the app is answered (400, 431 or 501 for a request;
// 502 for an upstream's response); Reason says what was wrong, for the log
// and the response body.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return "http/1.1: " + e.Reason }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Reason: fmt.Sprintf(format, args...)}
}
