// Package tunnel is the CoreDevice tunnel's data plane (tunnel.md §5, §6, §8): the CDTunnel
// handshake in both roles, the IPv6 packet stream framing, and a Tunnel that pumps packets
// between a transport stream (normally TLS: lockdown CoreDeviceProxy or RemotePairing TLS-PSK)
// and a wireguard tun.Device — a kernel TUN (Kernel) or a gVisor userspace stack (Userspace).
//
// The host side normally calls Start; the simulated device (package sim) runs the server half
// of the handshake (ReadRequest, WriteResponse) and New with a Userspace device of its own.
package tunnel
