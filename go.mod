module github.com/tlsbridge/tlsbridge

go 1.26.0

require golang.org/x/net v0.62.0

require (
	github.com/BurntSushi/toml v1.6.0
	golang.org/x/text v0.43.0 // indirect
)
