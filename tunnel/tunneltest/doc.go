// Package tunneltest holds helpers for tests that need a kernel TUN: a throwaway network
// namespace to create it in, so a test never touches the host's interfaces or routes.
package tunneltest
