package kernel

import "unsafe"

// The 16550 UARTs of the PVH platform (National Semiconductor PC16550D data
// sheet): polled, no interrupts. COM1 is the console (stdout),
// COM2 stderr where there is one, COM3 the control channel (abi.CtlPort).

const (
	comPort  = 0x3f8 // COM1
	com2Port = 0x2f8 // COM2
	uartTHR  = 0     // transmit holding register
	uartRBR  = 0     // receive buffer register
	uartLSR  = 5     // line status register
	uartSCR  = 7     // scratch register
	lsrTHRE  = 0x20  // THR empty
	lsrDR    = 0x01  // data ready: RBR holds a byte
)

//go:nosplit
func uartWriteTo(port uint16, buf, n uintptr) {
	for i := uintptr(0); i < n; i++ {
		uartPut(port, byte(load64((buf+i)&^7)>>(8*((buf+i)&7))))
	}
}

//go:nosplit
func uartPut(port uint16, b byte) {
	for inb(port+uartLSR)&lsrTHRE == 0 {
	}
	outb(port+uartTHR, b)
}

// uartGet returns the next byte the UART at port received, if any.
//
//go:nosplit
func uartGet(port uint16) (byte, bool) {
	if inb(port+uartLSR)&lsrDR == 0 {
		return 0, false
	}
	return inb(port + uartRBR), true
}

// uartPresent reports whether a 16550 answers at port: its scratch
// register keeps what is written to it.
//
//go:nosplit
func uartPresent(port uint16) bool {
	outb(port+uartSCR, 0x5a)
	return inb(port+uartSCR) == 0x5a
}

//go:nosplit
func uartString(port uint16, s string) {
	uartWriteTo(port, uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(len(s)))
}

// uartHex writes v in hexadecimal, with no prefix.
//
//go:nosplit
func uartHex(port uint16, v uint64) {
	started := false
	for sh := 60; sh >= 0; sh -= 4 {
		d := byte(v>>uint(sh)) & 0xf
		if d != 0 || started || sh == 0 {
			started = true
			uartPut(port, hexDigit(d))
		}
	}
}

// uartDec writes v in decimal.
//
//go:nosplit
func uartDec(port uint16, v uint64) {
	p := uint64(1)
	for v/p >= 10 {
		p *= 10
	}
	for ; p > 0; p /= 10 {
		uartPut(port, byte('0'+v/p%10))
	}
}

//go:nosplit
func hexDigit(d byte) byte {
	if d < 10 {
		return '0' + d
	}
	return 'a' + d - 10
}
