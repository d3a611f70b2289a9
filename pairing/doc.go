// Package pairing implements the RemotePairing TLV8 and OPACK codecs.
package pairing
