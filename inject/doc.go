// Package inject holds the tests of the contract between iosmuxd and code loaded into
// CoreDeviceService (CONTRACT.md): the JSON schemas in schema/ checked against a running
// daemon, and the C client in client/ built and run against it. It has no Go API.
package inject
