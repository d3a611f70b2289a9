module github.com/iosmux/iosmux

go 1.26.0

require (
	github.com/gorilla/mux v1.8.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	howett.net/plist v1.0.1 // indirect
)
