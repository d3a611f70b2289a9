#!/usr/bin/env bash
# Installs the third-party interop peers that test/interop/ drives against iosmux:
#   - Debian: libimobiledevice-utils (idevice_id, ideviceinfo, idevicepair),
#     openssl (reference TLS-PSK peer), iproute2 (network namespaces), chromium (a real
#     browser page attacking the API), systemd (systemd-analyze verify on
#     packaging/systemd), util-linux (setpriv: the daemon as an unprivileged user with
#     CAP_NET_ADMIN alone), python3-zeroconf (a third-party mDNS browser that must see the
#     simulator's adverts, test/interop/mdns_browse.py);
#   - npm (from test/interop/package-lock.json): appium-ios-remotexpc and its native
#     dependency appium-ios-tuntap, which has no prebuild for Debian 12's glibc and
#     is compiled here by node-gyp: g++, make, python3, pkg-config, and OpenSSL's and
#     zlib's static/dev files (it links libssl.a/libcrypto.a found via pkg-config,
#     and -lz), plus Node's headers (/usr/include/node, shipped by the nodejs package).
#   - gcc: the system C compiler (`cc`) that builds inject/client's C99 library and its test
#     program (inject/client_test.go), with AddressSanitizer (libasan, a gcc dependency).
# usbmuxd itself is NOT installed: the tests run the simulator's usbmuxd.
#
# Runs as root on a fresh Debian 12 machine (CI=true) or again on a used one:
# idempotent, and it skips what is already in place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTEROP="$ROOT/test/interop"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-peers] %s\n' "$*" >&2; }

APT_PACKAGES=(
  libimobiledevice-utils
  openssl
  iproute2
  gcc
  systemd
  util-linux
  g++
  make
  python3
  pkg-config
  libssl-dev
  zlib1g-dev
  ca-certificates
  curl
  chromium
  python3-zeroconf
)

# --- Debian packages ---------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} > 0)); then
  # Only the missing ones: naming an installed package would also upgrade it.
  log "apt-get install: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "Debian packages already installed"
fi

# --- Node.js -------------------------------------------------------------------
# Node comes with the machine image (nodejs package); appium-ios-remotexpc 5.x needs
# ^20.19 || ^22.12 || >=24.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "node/npm not found: the machine image must provide Node.js >= 20.19"
  exit 1
fi
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  const ok = (maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj >= 24;
  if (!ok) { console.error("Node " + process.versions.node + " is too old: need ^20.19 || ^22.12 || >=24"); process.exit(1); }
'

# node-gyp must compile against the local headers, never download them (no internet
# besides the registries). The image's ~/.npmrc sets nodedir=/usr; set it here too so
# the script does not depend on that file.
if [[ -f /usr/include/node/node.h && -z "${npm_config_nodedir:-}" ]]; then
  export npm_config_nodedir=/usr
fi

# --- npm packages --------------------------------------------------------------
# Skip `npm ci` when node_modules was installed from this very lockfile by this very
# Node and the native addon loads.
stamp_file="$INTEROP/node_modules/.iosmux-install-stamp"
stamp="$(sha256sum "$INTEROP/package-lock.json" "$INTEROP/package.json" | sha256sum | cut -d' ' -f1) $(node -p 'process.version + " " + process.versions.modules')"
check_native() {
  (cd "$INTEROP" && node -e '
    import("appium-ios-tuntap").then((m) => {
      if (typeof m.TunnelForwarder !== "function") { throw new Error("TunnelForwarder missing"); }
      return import("appium-ios-remotexpc");
    }).then((r) => {
      if (typeof r.discoverServices !== "function" || typeof r.createUsbmux !== "function") { throw new Error("appium-ios-remotexpc exports missing"); }
    }).catch((e) => { console.error(e); process.exit(1); });
  ')
}
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]] && check_native 2>/dev/null; then
  log "test/interop/node_modules is up to date"
else
  log "npm ci in test/interop (compiles appium-ios-tuntap)"
  (cd "$INTEROP" && npm ci --no-audit --no-fund)
  check_native
  printf '%s\n' "$stamp" >"$stamp_file"
fi

# --- smoke checks --------------------------------------------------------------
idevice_id --help >/dev/null
openssl version >&2
ip -V >&2
systemd-analyze --version >&2
setpriv --version >&2
log "done"
