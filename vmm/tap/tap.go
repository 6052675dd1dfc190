// Package tap is a network backend for the own monitor: the guest's frames go
// to and come from a Linux tap device (Documentation/networking/tuntap.rst),
// for bridged set-ups where the guest has an address on the host's network.
package tap

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

const (
	tunSetIff = 0x400454ca // TUNSETIFF
	iffTap    = 0x0002
	iffNoPI   = 0x1000
)

// Device is an open tap device.
type Device struct {
	f    *os.File
	name string
}

// Open attaches to the tap device name, creating it if the caller may
// (CAP_NET_ADMIN). Bringing it up and addressing it is the operator's part.
func Open(name string) (*Device, error) {
	if len(name) == 0 || len(name) >= 16 {
		return nil, fmt.Errorf("tap device name %q: want 1 to 15 characters", name)
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun for tap %s: %w (needs root or CAP_NET_ADMIN, or a tap device owned by you)", name, err)
	}
	var req [40]byte // struct ifreq: the name, then the flags
	copy(req[:16], name)
	*(*uint16)(unsafe.Pointer(&req[16])) = iffTap | iffNoPI
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("attach to tap device %s: %w (create it with: ip tuntap add %s mode tap user $USER)", name, e, name)
	}
	return &Device{f: os.NewFile(uintptr(fd), "/dev/net/tun:"+name), name: name}, nil
}

// Start hands each frame read from the device to deliver.
func (d *Device) Start(deliver func(frame []byte)) error {
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := d.f.Read(buf)
			if err != nil {
				return
			}
			deliver(append([]byte(nil), buf[:n]...))
		}
	}()
	return nil
}

// Send writes a frame from the guest to the device.
func (d *Device) Send(frame []byte) { d.f.Write(frame) }

// Close detaches from the device.
func (d *Device) Close() error { return d.f.Close() }
