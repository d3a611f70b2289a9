// Package pairing implements RemotePairing (pairing.md): the TLV8 and OPACK codecs, SRP-6a
// (3072-bit, SHA-512), pair-setup M1–M6 and pair-verify as state machines in the host and device
// roles, the encrypted control channel, the RPPairing framing, and Host/Device sessions that run
// the control-channel envelope over a Transport.
package pairing
