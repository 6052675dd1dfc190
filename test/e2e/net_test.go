package e2e

import (
	"debug/elf"
	"os/exec"
	"strings"
	"testing"
)

// TestLoopbackNet serves HTTP on 127.0.0.1 inside the guest and fetches from
// it, echoes 4 MiB over TCP with a checksum compare, and dials a closed port:
// the kernel's socket calls and the netstack component, on both monitors.
func TestLoopbackNet(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, image(t, "loopnet"))
		for _, want := range []string{
			"listening on 127.0.0.1:",
			"200 OK: hello from /unigo\n",
			"echoed 4194304 bytes, checksums equal: true\n",
			"writev echo: vectored\n",
			"recvmsg: \"data\" truncated true, from the sender true\n",
			"readv: [\"scat\" \"tered\"]\n",
			"ipv6 echo: six from ::1\n",
			"dual-stack listener ::: via IPv4 four from 127.0.0.1, via IPv6 six from ::1\n",
			"udp6: \"datagram6\" from ::1 (the sender true)\n",
			"closed port: dial tcp 127.0.0.1:1: connect: connection refused\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
		if r.code != 0 || t.Failed() {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestNetManyConns holds 500 loopback connections open at once inside the
// guest and makes a request on each: a thousand sockets in the kernel's table.
func TestNetManyConns(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, "-m", "512M", image(t, "manyconns"))
		expect(t, r, 0, "500 connections open\n500 answered\n")
	})
}

// TestNetSelective checks that only a program that uses package net gets the
// network stack, and that unigo build -v says so.
func TestNetSelective(t *testing.T) {
	for _, c := range []struct {
		pkg  string
		net  bool
		says string
	}{
		{"examples/hello", false, "no network stack: the program does not use package net"},
		{"loopnet", true, "guest/netstack (gVisor netstack"},
	} {
		f, err := elf.Open(image(t, c.pkg))
		if err != nil {
			t.Fatal(err)
		}
		syms, err := f.Symbols()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range syms {
			if strings.HasPrefix(s.Name, "gvisor.dev/") {
				found = true
				break
			}
		}
		if found != c.net {
			t.Errorf("%s: netstack symbols present %v, want %v", c.pkg, found, c.net)
		}
		dir := "./testdata/" + c.pkg
		if strings.Contains(c.pkg, "/") {
			dir = "../../" + c.pkg
		}
		out, err := exec.Command(unigoBin, "build", "-v", "-o", t.TempDir()+"/x.img", dir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.says) {
			t.Errorf("%s: unigo build -v (%v) does not say %q:\n%s", c.pkg, err, c.says, out)
		}
	}
}

// TestNetInterfaces lists the interfaces through route netlink, as
// net.Interfaces does: lo and eth0, with the address DHCP gave (the own
// monitor's server, QEMU's slirp), its link-local IPv6 address and the one
// it autoconfigured from the router's advertisement, each of which a
// listener can bind; and the DNS server DHCP named is in /etc/resolv.conf.
func TestNetInterfaces(t *testing.T) {
	bothVMMs(t, func(t *testing.T, vmm string) {
		r := run(t, "run", "--vmm", vmm, image(t, "ifaces"))
		expect(t, r, 0, ifacesOutput)
	})
}

const ifacesOutput = "1 lo mtu 65536  [up|loopback|running]\n2 eth0 mtu 1500 52:54:00:12:34:56 [up|broadcast|multicast|running]\n" +
	"addrs [127.0.0.1/8 ::1/128 10.0.2.15/24 fe80::5054:ff:fe12:3456/64 fec0::5054:ff:fe12:3456/64]\n" +
	"listening on eth0's address: 10.0.2.15\n" +
	"listening on eth0's address: fe80::5054:ff:fe12:3456\n" +
	"listening on eth0's address: fec0::5054:ff:fe12:3456\n" +
	"resolv.conf: \"nameserver 10.0.2.3\\n\" <nil>\n"
