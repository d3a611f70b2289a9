package lockdown

import (
	"fmt"

	"howett.net/plist"
)

// LibUSBMuxVersion is the kLibUSBMuxVersion value sent in plist requests.
const LibUSBMuxVersion = 3

// Plist MessageType values.
const (
	MsgResult           = "Result"
	MsgListen           = "Listen"
	MsgListDevices      = "ListDevices"
	MsgConnect          = "Connect"
	MsgReadPairRecord   = "ReadPairRecord"
	MsgSavePairRecord   = "SavePairRecord"
	MsgDeletePairRecord = "DeletePairRecord"
	MsgReadBUID         = "ReadBUID"
	MsgAttached         = "Attached"
	MsgDetached         = "Detached"
	MsgPaired           = "Paired"
)

// ClientInfo identifies the client in plist requests.
type ClientInfo struct {
	ClientVersionString string
	ProgName            string
	BundleID            string // optional
}

// DefaultClient is the ClientInfo iosmux sends.
var DefaultClient = ClientInfo{ClientVersionString: "iosmux", ProgName: "iosmux"}

// Request is a usbmuxd plist request; zero-valued optional keys are omitted.
type Request struct {
	MessageType         string
	ClientVersionString string `plist:",omitempty"`
	ProgName            string `plist:",omitempty"`
	BundleID            string `plist:",omitempty"`
	LibUSBMuxVersion    int    `plist:"kLibUSBMuxVersion,omitempty"`
	ConnType            int    `plist:",omitempty"`
	DeviceID            uint32 `plist:",omitempty"`
	PortNumber          uint16 `plist:",omitempty"` // network byte order, see PortToWire
	PairRecordID        string `plist:",omitempty"`
	PairRecordData      []byte `plist:",omitempty"`
}

// NewRequest returns a request of the given MessageType carrying c and kLibUSBMuxVersion.
func NewRequest(c ClientInfo, messageType string) Request {
	return Request{
		MessageType:         messageType,
		ClientVersionString: c.ClientVersionString,
		ProgName:            c.ProgName,
		BundleID:            c.BundleID,
		LibUSBMuxVersion:    LibUSBMuxVersion,
	}
}

// NewConnectRequest returns a Connect request for a host-order port.
func NewConnectRequest(c ClientInfo, deviceID uint32, port uint16) Request {
	r := NewRequest(c, MsgConnect)
	r.DeviceID = deviceID
	r.PortNumber = PortToWire(port)
	return r
}

// Result is a plist Result reply.
type Result struct {
	MessageType string
	Number      int
}

// DeviceProperties is the Properties dict of an Attached event.
type DeviceProperties struct {
	ConnectionSpeed        int    `plist:",omitempty"`
	ConnectionType         string `plist:",omitempty"`
	DeviceID               uint32
	LocationID             uint32 `plist:",omitempty"`
	ProductID              uint32 `plist:",omitempty"`
	SerialNumber           string
	USBSerialNumber        string `plist:",omitempty"`
	UDID                   string `plist:",omitempty"`
	NetworkAddress         []byte `plist:",omitempty"`
	EscapedFullServiceName string `plist:",omitempty"`
	InterfaceIndex         int    `plist:",omitempty"`
}

// DeviceAttached is an Attached event or a DeviceList entry.
type DeviceAttached struct {
	MessageType string
	DeviceID    uint32
	Properties  DeviceProperties
}

// DeviceEvent is a Detached or Paired event.
type DeviceEvent struct {
	MessageType string
	DeviceID    uint32
}

// DeviceList is the ListDevices reply.
type DeviceList struct {
	DeviceList []DeviceAttached
}

// PairRecordReply is the ReadPairRecord reply.
type PairRecordReply struct {
	PairRecordData []byte
}

// BUIDReply is the ReadBUID reply.
type BUIDReply struct {
	BUID string
}

// NewPlistMessage encodes v as an XML plist in a version-1 PLIST message with tag.
func NewPlistMessage(tag uint32, v any) (*Message, error) {
	body, err := plist.Marshal(v, plist.XMLFormat)
	if err != nil {
		return nil, err
	}
	return &Message{Header: Header{Version: VersionPlist, Type: TypePlist, Tag: tag}, Payload: body}, nil
}

// DecodePlist unmarshals the payload of a version-1 PLIST message into v.
func (m *Message) DecodePlist(v any) error {
	if m.Version != VersionPlist || m.Type != TypePlist {
		return fmt.Errorf("%w: version %d type %d is not a plist message", ErrPayload, m.Version, m.Type)
	}
	return UnmarshalPlist(m.Payload, v)
}

// PlistMessageType returns the MessageType key of a plist message ("" if absent).
func (m *Message) PlistMessageType() (string, error) {
	var t struct{ MessageType string }
	if err := m.DecodePlist(&t); err != nil {
		return "", err
	}
	return t.MessageType, nil
}
