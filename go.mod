module github.com/iosmux/iosmux

go 1.26.0

require (
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.62.0
	howett.net/plist v1.0.1
)

require golang.org/x/text v0.43.0 // indirect
