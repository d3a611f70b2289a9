// Package lockdown implements the usbmuxd client wire format and lockdown-style plist framing.
package lockdown
