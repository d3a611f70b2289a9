package profile

import "strconv"

// Service is one RSD handshake Services entry without its port (ports are allocated per
// session by the caller; rsd.md §1). Extra holds entry-level keys besides Port and
// Properties; every entry has "Entitlement" (string) first, since idevice drops entries
// without one (rsd.md §3.3).
type Service struct {
	Name              string
	UsesRemoteXPC     bool
	ServiceVersion    int64
	HasServiceVersion bool
	Extra             []KV
}

// Entitlement returns the entry's Entitlement string.
func (s Service) Entitlement() string {
	v, _ := Lookup(s.Extra, "Entitlement")
	e, _ := v.(string)
	return e
}

// Entry returns the handshake value for this service listening on port, ordered as rsd.md
// §3.3: Extra (Entitlement), Port as a decimal string, Properties{UsesRemoteXPC,
// ServiceVersion?}. ServiceVersion is emitted as int64.
func (s Service) Entry(port int) []KV {
	props := []KV{{"UsesRemoteXPC", s.UsesRemoteXPC}}
	if s.HasServiceVersion {
		props = append(props, KV{"ServiceVersion", s.ServiceVersion})
	}
	out := make([]KV, 0, len(s.Extra)+2)
	out = append(out, s.Extra...)
	out = append(out, KV{"Port", strconv.Itoa(port)}, KV{"Properties", props})
	return out
}

// Entitlement strings. Only tunnelClient and lockdownUntrusted are given by the spec
// (pairing.md §2.1; rsd.md §3.4 for insecure_notification_proxy); lockdownTrusted is the
// placeholder for every other trusted service, whose real entitlement the spec does not give.
const (
	entTunnelClient      = "com.apple.dt.coredevice.tunnelservice.client"
	entLockdownUntrusted = "com.apple.mobile.lockdown.remote.untrusted"
	entLockdownTrusted   = "com.apple.mobile.lockdown.remote.trusted"
)

const (
	svcTunnel          = "com.apple.internal.dt.coredevice.untrusted.tunnelservice"
	svcLockdownTrusted = "com.apple.mobile.lockdown.remote.trusted"
	svcLockdownUntrust = "com.apple.mobile.lockdown.remote.untrusted"
)

// Service name groups of rsd.md §3.4, in the spec's order.
var (
	// UsesRemoteXPC = true (trusted iOS 18.0 beta dump).
	remoteXPCServices = []string{
		"com.apple.RestoreRemoteServices.restoreserviced",
		"com.apple.carkit.remote-iap.service",
		"com.apple.corecaptured.remoteservice",
		"com.apple.coredevice.appservice",
		"com.apple.coredevice.deviceinfo",
		"com.apple.coredevice.diagnosticsservice",
		"com.apple.coredevice.fileservice.control",
		"com.apple.coredevice.fileservice.data",
		"com.apple.coredevice.openstdiosocket",
		"com.apple.dt.ViewHierarchyAgent.remote",
		"com.apple.dt.remoteFetchSymbols",
		"com.apple.fusion.remote.service",
		"com.apple.gputools.remote.agent",
		svcTunnel,
		"com.apple.internal.dt.remote.debugproxy",
		"com.apple.mobile.insecure_notification_proxy.remote",
		"com.apple.mobile.notification_proxy.remote",
		"com.apple.mobile.storage_mounter_proxy.bridge",
		"com.apple.osanalytics.logTransfer",
		"com.apple.remote.installcoordination_proxy",
		"com.apple.security.cryptexd.remote",
		"com.apple.sysdiagnose.remote",
		"com.apple.sysdiagnose.remote.trusted",
	}
	// Newer CoreDevice services used by pmd3 (UNCONFIRMED per iOS version; offered on all profiles).
	newerCoreDeviceServices = []string{
		"com.apple.coredevice.configuration",
		"com.apple.coredevice.displayservice",
		"com.apple.coredevice.devicecontrol",
		"com.apple.coredevice.hid.indigo",
		"com.apple.coredevice.hid.universalhidservice",
		"com.apple.coredevice.iconservice",
		"com.apple.coredevice.locationservice",
		"com.apple.coredevice.pasteboardservice",
		"com.apple.coredevice.screencaptureservice",
	}
	// Legacy names; each is offered as "<name>.shim.remote" (UsesRemoteXPC = false).
	shimServices = []string{
		"com.apple.GPUTools.MobileService",
		"com.apple.PurpleReverseProxy.Conn",
		"com.apple.PurpleReverseProxy.Ctrl",
		"com.apple.accessibility.axAuditDaemon.remoteserver",
		"com.apple.afc",
		"com.apple.amfi.lockdown",
		"com.apple.atc",
		"com.apple.atc2",
		"com.apple.carkit.service",
		"com.apple.commcenter.mobile-helper-cbupdateservice",
		"com.apple.companion_proxy",
		"com.apple.crashreportcopymobile",
		"com.apple.crashreportmover",
		"com.apple.dt.remotepairingdeviced.lockdown",
		"com.apple.idamd",
		"com.apple.internal.devicecompute.CoreDeviceProxy",
		"com.apple.iosdiagnostics.relay",
		"com.apple.misagent",
		"com.apple.mobile.MCInstall",
		"com.apple.mobile.assertion_agent",
		"com.apple.mobile.diagnostics_relay",
		"com.apple.mobile.file_relay",
		"com.apple.mobile.heartbeat",
		"com.apple.mobile.house_arrest",
		"com.apple.mobile.insecure_notification_proxy",
		"com.apple.mobile.installation_proxy",
		"com.apple.mobile.mobile_image_mounter",
		"com.apple.mobile.notification_proxy",
		"com.apple.mobileactivationd",
		"com.apple.mobilebackup2",
		"com.apple.mobilesync",
		"com.apple.os_trace_relay",
		"com.apple.pcapd",
		"com.apple.preboardservice",
		"com.apple.preboardservice_v2",
		"com.apple.springboardservices",
		"com.apple.streaming_zip_conduit",
		"com.apple.syslog_relay",
		"com.apple.webinspector",
		// Other shims referenced by clients.
		"com.apple.bluetooth.BTPacketLogger",
		"com.apple.backgroundassets.lockdownservice",
		"com.apple.screenshotr",
	}
	// UsesRemoteXPC = false, not shims (raw TCP; the lockdown endpoints use RSDCheckin).
	rawServices = []string{
		"com.apple.instruments.dtservicehub",
		"com.apple.dt.testmanagerd.remote",
		"com.apple.dt.testmanagerd.remote.automation",
		"com.apple.internal.devicecompute.CoreDeviceProxy",
		svcLockdownTrusted,
		svcLockdownUntrust,
	}
	// Untrusted RSD (port 58783), iOS 17.0 beta dump: name → UsesRemoteXPC.
	untrustedServices = []struct {
		name string
		xpc  bool
	}{
		{"com.apple.fusion.remote.service", true},
		{"com.apple.gputools.remote.agent", true},
		{svcTunnel, true},
		{"com.apple.mobile.insecure_notification_proxy.remote", true},
		{"com.apple.mobile.insecure_notification_proxy.shim.remote", false},
		{svcLockdownUntrust, true}, // listed true here, false in the trusted dump (rsd.md §3.4)
		{"com.apple.osanalytics.logTransfer", true},
	}
)

// ShimSuffix is appended to a legacy lockdown service name for its RSD shim (rsd.md §4.2).
const ShimSuffix = ".shim.remote"

// newService fills in the entitlement and ServiceVersion the spec gives for name.
func newService(name string, usesXPC bool) Service {
	s := Service{Name: name, UsesRemoteXPC: usesXPC}
	ent := entLockdownTrusted
	switch name {
	case svcTunnel:
		ent = entTunnelClient
		s.ServiceVersion, s.HasServiceVersion = 2, true
	case svcLockdownUntrust,
		"com.apple.mobile.insecure_notification_proxy.remote",
		"com.apple.mobile.insecure_notification_proxy" + ShimSuffix:
		ent = entLockdownUntrusted
	}
	s.Extra = []KV{{"Entitlement", ent}}
	return s
}

// Services returns the trusted RSD service inventory of rsd.md §3.4 (as offered inside the
// tunnel), in the spec's order: RemoteXPC services, newer CoreDevice services, shims, then
// raw and lockdown endpoints. The list is the same for every profile.
func (d *Device) Services() []Service {
	out := make([]Service, 0, len(remoteXPCServices)+len(newerCoreDeviceServices)+len(shimServices)+len(rawServices))
	for _, n := range remoteXPCServices {
		out = append(out, newService(n, true))
	}
	for _, n := range newerCoreDeviceServices {
		out = append(out, newService(n, true))
	}
	for _, n := range shimServices {
		out = append(out, newService(n+ShimSuffix, false))
	}
	for _, n := range rawServices {
		out = append(out, newService(n, false))
	}
	return out
}

// UntrustedServices returns the 7 services of the untrusted RSD (USB, port 58783; rsd.md §3.4).
func (d *Device) UntrustedServices() []Service {
	out := make([]Service, 0, len(untrustedServices))
	for _, u := range untrustedServices {
		out = append(out, newService(u.name, u.xpc))
	}
	return out
}
