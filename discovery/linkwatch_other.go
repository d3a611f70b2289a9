//go:build !linux

package discovery

import "context"

// WatchLinks is Linux only: elsewhere it never signals, and the browser's rescan finds links.
func WatchLinks(ctx context.Context) (<-chan struct{}, error) { return nil, nil }
