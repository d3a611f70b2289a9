package pairing

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Role is which end of the control channel a Channel serves.
type Role int

// Roles.
const (
	RoleHost Role = iota
	RoleDevice
)

// Channel is the streamEncrypted session (pairing.md §8): requests host→device under kClient,
// responses device→host under kServer, one counter per request/response pair starting at 0.
type Channel struct {
	role    Role
	client  cipher.AEAD // kClient
	server  cipher.AEAD // kServer
	n       uint64
	pending bool // a request is sealed/opened and its response not yet
}

// NewChannel keys a channel from ikm: the pair-verify shared secret (32 bytes) or the SRP K right
// after pair-setup (64 bytes).
func NewChannel(ikm []byte, role Role) (*Channel, error) {
	if len(ikm) == 0 {
		return nil, fmt.Errorf("%w: encrypted channel: no key", ErrProtocol)
	}
	c, err := chacha20poly1305.New(deriveKey(ikm, "", hkdfClientEncryptInfo))
	if err != nil {
		return nil, err
	}
	s, err := chacha20poly1305.New(deriveKey(ikm, "", hkdfServerEncryptInfo))
	if err != nil {
		return nil, err
	}
	return &Channel{role: role, client: c, server: s}, nil
}

// channelNonce is LE64(n) || 00000000.
func channelNonce(n uint64) []byte {
	b := make([]byte, chacha20poly1305.NonceSize)
	binary.LittleEndian.PutUint64(b, n)
	return b
}

// Seal encrypts an outgoing message: a request (host) or the response to the open request (device).
func (c *Channel) Seal(pt []byte) ([]byte, error) {
	if c.role == RoleHost {
		if c.pending {
			return nil, fmt.Errorf("%w: encrypted channel: request %d still awaits its response", ErrProtocol, c.n)
		}
		c.pending = true
		return c.client.Seal(nil, channelNonce(c.n), pt, nil), nil
	}
	if !c.pending {
		return nil, fmt.Errorf("%w: encrypted channel: response with no request", ErrProtocol)
	}
	c.pending = false
	ct := c.server.Seal(nil, channelNonce(c.n), pt, nil)
	c.n++
	return ct, nil
}

// Open decrypts an incoming message: the response to the open request (host) or a request (device).
func (c *Channel) Open(ct []byte) ([]byte, error) {
	if c.role == RoleHost {
		if !c.pending {
			return nil, fmt.Errorf("%w: encrypted channel: response with no request", ErrProtocol)
		}
		pt, err := c.server.Open(nil, channelNonce(c.n), ct, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: encrypted channel: response %d", ErrDecrypt, c.n)
		}
		c.pending = false
		c.n++
		return pt, nil
	}
	if c.pending {
		return nil, fmt.Errorf("%w: encrypted channel: request %d still awaits its response", ErrProtocol, c.n)
	}
	pt, err := c.client.Open(nil, channelNonce(c.n), ct, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: encrypted channel: request %d", ErrDecrypt, c.n)
	}
	c.pending = true
	return pt, nil
}
