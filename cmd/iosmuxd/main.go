// Command iosmuxd is the iOS 17+ device tunnel daemon and its virtual iPhone.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
