#!/usr/bin/python3
"""Browse mDNS service types with python3-zeroconf (Debian) and print what it resolved.

Usage: mdns_browse.py SECONDS TYPE... (TYPE fully qualified, "_remoted._tcp.local.")
Prints one JSON list: {"type", "name", "port", "addresses", "txt"} per service resolved
within SECONDS, IPv4 only (the tests give the link an IPv4 address).
"""
import json
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf


class Collect(ServiceListener):
    def __init__(self):
        self.names = set()

    def add_service(self, zc, type_, name):
        self.names.add((type_, name))

    def update_service(self, zc, type_, name):
        self.names.add((type_, name))

    def remove_service(self, zc, type_, name):
        pass


def main():
    seconds = float(sys.argv[1])
    types = sys.argv[2:]
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    listener = Collect()
    browsers = [ServiceBrowser(zc, t, listener) for t in types]
    deadline = time.monotonic() + seconds
    out = {}
    while time.monotonic() < deadline:
        for type_, name in sorted(listener.names):
            if (type_, name) in out:
                continue
            info = zc.get_service_info(type_, name, timeout=1000)
            if info is None:
                continue
            txt = {k.decode(errors="replace"): (v.decode(errors="replace") if v is not None else None)
                   for k, v in info.properties.items()}
            out[(type_, name)] = {"type": type_, "name": name, "port": info.port,
                                  "addresses": info.parsed_addresses(), "txt": txt}
        if len(out) == len(types):
            break
        time.sleep(0.1)
    for b in browsers:
        b.cancel()
    zc.close()
    json.dump(list(out.values()), sys.stdout)


if __name__ == "__main__":
    main()
