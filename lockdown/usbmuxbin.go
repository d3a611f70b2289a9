package lockdown

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Binary (version 0) payload sizes.
const (
	ResultPayloadSize   = 4
	ConnectPayloadSize  = 8
	DeviceIDPayloadSize = 4
	DeviceRecordSize    = 268
	SerialFieldSize     = 256
)

// ErrPayload reports a binary payload of the wrong size or content.
var ErrPayload = errors.New("lockdown: bad usbmuxd payload")

// PortToWire converts a host-order TCP port to the usbmuxd Connect PortNumber value.
func PortToWire(port uint16) uint16 { return bits.ReverseBytes16(port) }

// PortFromWire converts a usbmuxd Connect PortNumber value to a host-order TCP port.
func PortFromWire(wire uint16) uint16 { return bits.ReverseBytes16(wire) }

// EncodeResult encodes a binary RESULT payload.
func EncodeResult(code ResultCode) []byte {
	return binary.LittleEndian.AppendUint32(nil, uint32(code))
}

// DecodeResult decodes a binary RESULT payload.
func DecodeResult(p []byte) (ResultCode, error) {
	if len(p) != ResultPayloadSize {
		return 0, fmt.Errorf("%w: RESULT is %d bytes", ErrPayload, len(p))
	}
	return ResultCode(binary.LittleEndian.Uint32(p)), nil
}

// EncodeDeviceID encodes a binary DEVICE_REMOVE or DEVICE_PAIRED payload.
func EncodeDeviceID(id uint32) []byte {
	return binary.LittleEndian.AppendUint32(nil, id)
}

// DecodeDeviceID decodes a binary DEVICE_REMOVE or DEVICE_PAIRED payload.
func DecodeDeviceID(p []byte) (uint32, error) {
	if len(p) != DeviceIDPayloadSize {
		return 0, fmt.Errorf("%w: device id is %d bytes", ErrPayload, len(p))
	}
	return binary.LittleEndian.Uint32(p), nil
}

// ConnectRequest is a binary CONNECT payload; Port is in host order.
type ConnectRequest struct {
	DeviceID uint32
	Port     uint16
}

// MarshalBinary encodes the CONNECT payload with the port in network byte order and reserved = 0.
func (c ConnectRequest) MarshalBinary() ([]byte, error) {
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, ConnectPayloadSize), c.DeviceID)
	b = binary.BigEndian.AppendUint16(b, c.Port)
	return binary.LittleEndian.AppendUint16(b, 0), nil
}

// DecodeConnect decodes a binary CONNECT payload, ignoring the reserved field.
func DecodeConnect(p []byte) (ConnectRequest, error) {
	if len(p) != ConnectPayloadSize {
		return ConnectRequest{}, fmt.Errorf("%w: CONNECT is %d bytes", ErrPayload, len(p))
	}
	return ConnectRequest{
		DeviceID: binary.LittleEndian.Uint32(p),
		Port:     binary.BigEndian.Uint16(p[4:]),
	}, nil
}

// DeviceRecord is a binary DEVICE_ADD payload.
type DeviceRecord struct {
	DeviceID     uint32
	ProductID    uint16
	SerialNumber string // at most 255 bytes, no NUL
	Location     uint32
}

// MarshalBinary encodes the 268-byte DEVICE_ADD payload with a NUL-padded serial and zero padding.
func (d DeviceRecord) MarshalBinary() ([]byte, error) {
	if len(d.SerialNumber) >= SerialFieldSize || bytes.IndexByte([]byte(d.SerialNumber), 0) >= 0 {
		return nil, fmt.Errorf("%w: serial number must be < %d bytes without NUL", ErrPayload, SerialFieldSize)
	}
	b := make([]byte, DeviceRecordSize)
	binary.LittleEndian.PutUint32(b, d.DeviceID)
	binary.LittleEndian.PutUint16(b[4:], d.ProductID)
	copy(b[6:6+SerialFieldSize], d.SerialNumber)
	binary.LittleEndian.PutUint32(b[264:], d.Location)
	return b, nil
}

// DecodeDeviceRecord decodes a DEVICE_ADD payload; the serial ends at the first NUL.
func DecodeDeviceRecord(p []byte) (DeviceRecord, error) {
	if len(p) != DeviceRecordSize {
		return DeviceRecord{}, fmt.Errorf("%w: DEVICE_ADD is %d bytes", ErrPayload, len(p))
	}
	serial := p[6 : 6+SerialFieldSize]
	if i := bytes.IndexByte(serial, 0); i >= 0 {
		serial = serial[:i]
	}
	return DeviceRecord{
		DeviceID:     binary.LittleEndian.Uint32(p),
		ProductID:    binary.LittleEndian.Uint16(p[4:]),
		SerialNumber: string(serial),
		Location:     binary.LittleEndian.Uint32(p[264:]),
	}, nil
}
