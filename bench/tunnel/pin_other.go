//go:build !linux

package main

import "errors"

// pinSelf is Linux-only.
func pinSelf(int) error { return errors.New("-pin needs Linux") }
