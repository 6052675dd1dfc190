package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"unigo.dev/unigo/abi"
	"unigo.dev/unigo/vmm/machine"
)

// serveMetrics listens on addr and serves the machine's counters at
// /metrics in Prometheus's text exposition format (version 0.0.4,
// prometheus.io/docs/instrumenting/exposition_formats). It listens before
// the guest boots, so that a bad or taken address fails the run.
func serveMetrics(addr, image string, stats func() machine.Stats) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			go serveScrape(c, image, stats)
		}
	}()
	return func() { ln.Close() }, nil
}

// serveScrape answers one HTTP/1.x request on c and closes the connection:
// GET or HEAD of /metrics gets the metrics, another path 404, another
// method 405 (RFC 9112's message syntax, RFC 9110's status codes). It is
// written by hand because net/http made the unigo binary 4 MB larger and
// every unigo start 0.7 ms slower (its package initialization and pages),
// for one scraper's request now and then.
func serveScrape(c net.Conn, image string, stats func() machine.Stats) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(io.LimitReader(c, 64<<10)) // the request line and headers
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	for { // the headers, up to the empty line
		h, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if h == "\r\n" || h == "\n" {
			break
		}
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	method := f[0]
	path, _, _ := strings.Cut(f[1], "?")
	status, ctype := "200 OK", "text/plain; version=0.0.4; charset=utf-8"
	var body bytes.Buffer
	switch {
	case method != "GET" && method != "HEAD":
		status, ctype = "405 Method Not Allowed\r\nAllow: GET, HEAD", "text/plain; charset=utf-8"
		body.WriteString("unigo's metrics answer GET\n")
	case path != "/metrics":
		status, ctype = "404 Not Found", "text/plain; charset=utf-8"
		body.WriteString("unigo serves its metrics at /metrics\n")
	default:
		writeMetrics(&body, image, stats())
	}
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status, ctype, body.Len())
	if method != "HEAD" {
		c.Write(body.Bytes())
	}
}

// metricWriter writes metric families, each with its HELP and TYPE once.
type metricWriter struct {
	w    io.Writer
	seen map[string]bool
}

func (mw *metricWriter) put(name, typ, help string, v float64, labels ...string) {
	if !mw.seen[name] {
		mw.seen[name] = true
		fmt.Fprintf(mw.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(mw.w, "%s %s\n", b.String(), strconv.FormatFloat(v, 'f', -1, 64))
}

// escapeLabel escapes a label value as the text format wants: backslash,
// double quote and newline.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func sortedKeys(m map[string]uint64) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func writeMetrics(w io.Writer, image string, s machine.Stats) {
	mw := &metricWriter{w: w, seen: map[string]bool{}}
	name := ""
	if curInstance != nil {
		name = curInstance.meta.Name
	}
	mw.put("unigo_info", "gauge", "The instance: its image, name and the unigo version and image ABI.", 1,
		"image", image, "instance", name, "version", version(), "abi", fmt.Sprint(abi.Version))
	mw.put("unigo_uptime_seconds", "gauge", "Seconds since the guest started.", s.Uptime.Seconds())
	mw.put("unigo_vcpu_seconds_total", "counter", "CPU time of the vCPU thread: the guest's, and the monitor's on its behalf.", s.VCPUTime.Seconds())
	for _, r := range sortedKeys(s.Exits) {
		mw.put("unigo_vm_exits_total", "counter", "VM exits, by KVM exit reason.", float64(s.Exits[r]), "reason", r)
	}
	for _, c := range sortedKeys(s.Hypercalls) {
		mw.put("unigo_hypercalls_total", "counter", "Hypercalls the guest made, by call.", float64(s.Hypercalls[c]), "call", c)
	}
	for _, c := range sortedKeys(s.Syscalls) {
		mw.put("unigo_guest_syscalls_total", "counter", "System calls the guest's program (and its network component, as unigo_net) made, by call.", float64(s.Syscalls[c]), "call", c)
	}
	mw.put("unigo_guest_syscall_gates_total", "counter", "Of those system calls, the ones that entered the kernel through a system-call gate's jump rather than a SYSCALL instruction (unigo build --no-gates; paging-based KVM only).", float64(s.Gated))
	for _, e := range sortedKeys(s.KVM) {
		mw.put("unigo_kvm_vcpu_events_total", "counter", "KVM's own counters of the vCPU (KVM_GET_STATS_FD), by its names: exits, page faults it handled (pf_*), halts, emulated instructions.", float64(s.KVM[e]), "event", e)
	}
	for _, k := range sortedKeys(s.Interrupts) {
		mw.put("unigo_interrupts_injected_total", "counter", "Interrupts injected into the guest, by kind.", float64(s.Interrupts[k]), "kind", k)
	}
	mw.put("unigo_guest_memory_bytes", "gauge", "Guest RAM (unigo run -m).", float64(s.MemSize))
	mw.put("unigo_guest_memory_touched_bytes", "gauge", "Guest RAM backed by host memory: the pages the guest touched.", float64(s.MemTouched))
	if n := s.Net; n != nil {
		mw.put("unigo_network_receive_bytes_total", "counter", "Bytes of the Ethernet frames the guest received.", float64(n.RxBytes))
		mw.put("unigo_network_receive_frames_total", "counter", "Ethernet frames the guest received.", float64(n.RxFrames))
		mw.put("unigo_network_transmit_bytes_total", "counter", "Bytes of the Ethernet frames the guest sent.", float64(n.TxBytes))
		mw.put("unigo_network_transmit_frames_total", "counter", "Ethernet frames the guest sent.", float64(n.TxFrames))
		mw.put("unigo_network_streams_total", "counter", "Forwarded TCP connections (-p) the socket device carried to the guest's sockets, past both TCP/IP stacks.", float64(n.Streams))
		mw.put("unigo_network_stream_receive_bytes_total", "counter", "Bytes of forwarded connections the guest received through the socket device.", float64(n.StreamRxBytes))
		mw.put("unigo_network_stream_transmit_bytes_total", "counter", "Bytes of forwarded connections the guest sent through the socket device.", float64(n.StreamTxBytes))
	}
	// A family's samples go together, as the format wants.
	disk := []struct {
		name, help string
		v          func(machine.DiskStats) uint64
	}{
		{"unigo_disk_read_bytes_total", "Bytes the guest read from a disk.", func(d machine.DiskStats) uint64 { return d.ReadBytes }},
		{"unigo_disk_reads_total", "Read requests of a disk.", func(d machine.DiskStats) uint64 { return d.Reads }},
		{"unigo_disk_written_bytes_total", "Bytes the guest wrote to a disk.", func(d machine.DiskStats) uint64 { return d.WriteBytes }},
		{"unigo_disk_writes_total", "Write requests of a disk.", func(d machine.DiskStats) uint64 { return d.Writes }},
		{"unigo_disk_flushes_total", "Flushes of a disk (fdatasync on the host).", func(d machine.DiskStats) uint64 { return d.Flushes }},
	}
	for _, f := range disk {
		for _, d := range s.Disks {
			mw.put(f.name, "counter", f.help, float64(f.v(d)), "disk", d.Name)
		}
	}
	share := []struct {
		name, help string
		v          func(machine.ShareStats) uint64
	}{
		{"unigo_share_requests_total", "9P requests to a folder share.", func(s machine.ShareStats) uint64 { return s.Requests }},
		{"unigo_share_request_bytes_total", "Bytes of the 9P requests to a folder share (writes' data among them).", func(s machine.ShareStats) uint64 { return s.BytesIn }},
		{"unigo_share_reply_bytes_total", "Bytes of the 9P replies of a folder share (reads' data among them).", func(s machine.ShareStats) uint64 { return s.BytesOut }},
	}
	for _, f := range share {
		for _, sh := range s.Shares {
			mw.put(f.name, "counter", f.help, float64(f.v(sh)), "share", sh.Path)
		}
	}
}
