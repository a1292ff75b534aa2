module github.com/tlsbridge/tlsbridge

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/elazarl/goproxy v1.9.2
	github.com/sirupsen/logrus v1.9.4
	github.com/smallstep/truststore v0.13.0
	golang.org/x/net v0.62.0
)

require (
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	howett.net/plist v1.0.0 // indirect
)
