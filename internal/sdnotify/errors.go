package sdnotify

import "errors"

// ErrUnsupportedSocket is returned by New for a $NOTIFY_SOCKET that is
// neither an absolute path nor an abstract ("@") name.
var ErrUnsupportedSocket = errors.New("not an absolute path or an @abstract socket name")
