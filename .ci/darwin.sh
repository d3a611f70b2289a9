#!/usr/bin/env bash
# macOS check, run on Linux: everything builds and vets for darwin/arm64 and darwin/amd64, and
# every package's test binary compiles and links for darwin, so a change that breaks macOS (a
# *_darwin.go file, a build tag, a Linux-only call) fails CI. Nothing here runs on macOS.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
GOOS=darwin GOARCH=arm64 go build ./...
GOOS=darwin GOARCH=amd64 go build ./...
GOOS=darwin GOARCH=arm64 go vet ./...
GOOS=darwin GOARCH=amd64 go vet ./...
# -s -w: no symbol tables, which halves the link time; the binaries are thrown away.
# One output name per package (tunnel and bench/tunnel would both write tunnel.test).
for pkg in $(go list ./...); do
  GOOS=darwin GOARCH=arm64 go test -ldflags='-s -w' -c -o "$out/$(echo "$pkg" | tr / _).test" "$pkg" >/dev/null
done
echo "darwin: build, vet and test binaries OK"
