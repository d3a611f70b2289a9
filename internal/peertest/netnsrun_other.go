//go:build !linux

package peertest

import "errors"

// InNetNS needs Linux network namespaces.
func InNetNS(ns string, fn func() error) error { return errors.New("network namespaces: Linux only") }
