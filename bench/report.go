package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// results are a run's raw figures (results.json) and what the tables and
// plots show of them.
type results struct {
	Date, Host string
	N          int
	Wrk        string
	Settings   []*settingResult
	Sizes      []sizeRow      `json:",omitempty"`
	MinMem     []minMemRow    `json:",omitempty"`
	Density    *densityResult `json:",omitempty"`
}

// settingResult holds every run's figure; ms for times, MiB for memory.
type settingResult struct {
	Name, Short           string
	Unigo                 bool
	HelloFirst, HelloExit []float64
	HttpdFirst            []float64
	IdleMiB, LoadMiB      []float64
	RPS, P50, P99         []float64
}

type sizeRow struct {
	Program                                    string
	Binary, Image, Stripped, Kernel, Initramfs int64
}

type minMemRow struct {
	Setting      string
	Hello, Httpd int // MiB; 0: not even with 512
}

type densityResult struct {
	Target, Running, Answering int
	Stopped                    string   // why fewer than Target started
	Failures                   []string // why some did not answer
	LaunchPerSec               float64
	IdleN                      int
	IdleCPUPercent             float64 // of one core
	PssMiB, HostMiB            float64 // per instance
}

func (r *results) markdown(w io.Writer) {
	fmt.Fprintf(w, "date %s, host %s, %d runs of each setting, medians; (×) the ratio to the native process\n\n", r.Date, r.Host, r.N)
	base := r.Settings[0]
	ratio := func(v, b float64) string {
		if v == 0 || b == 0 {
			return ""
		}
		return " (" + number(v/b) + "×)"
	}
	cell := func(v []float64, b []float64, format string) string {
		if len(v) == 0 {
			return "not run"
		}
		return fmt.Sprintf(format, median(v)) + ratio(median(v), median(b))
	}
	if len(base.HelloExit) > 0 || len(base.HttpdFirst) > 0 {
		fmt.Fprintf(w, "| setting | hello exec→first line | hello exec→exit | httpd exec→first answer |\n|---|---|---|---|\n")
		for _, s := range r.Settings {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.Name, cell(s.HelloFirst, base.HelloFirst, "%.1f ms"),
				cell(s.HelloExit, base.HelloExit, "%.1f ms"), cell(s.HttpdFirst, base.HttpdFirst, "%.1f ms"))
		}
		fmt.Fprintln(w)
	}
	if len(base.RPS) > 0 {
		fmt.Fprintf(w, "wrk -t2 -c64 -d%s against httpd (keep-alive, a small answer); host memory is the PSS of the setting's processes, a VM's touched guest memory included\n\n", r.Wrk)
		fmt.Fprintf(w, "| setting | requests/s | p50 | p99 | host memory idle | host memory after the load |\n|---|---|---|---|---|---|\n")
		for _, s := range r.Settings {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", s.Name, cell(s.RPS, base.RPS, "%.0f"),
				cell(s.P50, base.P50, "%.2f ms"), cell(s.P99, base.P99, "%.2f ms"),
				cell(s.IdleMiB, base.IdleMiB, "%.1f MiB"), cell(s.LoadMiB, base.LoadMiB, "%.1f MiB"))
		}
		fmt.Fprintln(w)
	}
	if len(r.Sizes) > 0 {
		fmt.Fprintf(w, "| program | static Linux binary | Unigo image | Unigo image, -ldflags=-s -w | Linux VM: kernel + initramfs |\n|---|---|---|---|---|\n")
		for _, z := range r.Sizes {
			vm := "not run"
			if z.Kernel > 0 {
				vm = fmt.Sprintf("%s + %s", mb(z.Kernel), mb(z.Initramfs))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", z.Program, mb(z.Binary), mb(z.Image), mb(z.Stripped), vm)
		}
		fmt.Fprintln(w)
	}
	if len(r.MinMem) > 0 {
		fmt.Fprintf(w, "| setting | smallest -m: hello | smallest -m: httpd under load |\n|---|---|---|\n")
		for _, m := range r.MinMem {
			fmt.Fprintf(w, "| %s | %s | %s |\n", m.Setting, mib(m.Hello), mib(m.Httpd))
		}
		fmt.Fprintln(w)
	}
	if d := r.Density; d != nil {
		fmt.Fprintf(w, "| density, Unigo on the own monitor, httpd, default -m | |\n|---|---|\n")
		fmt.Fprintf(w, "| instances started (of %d asked) | %d |\n", d.Target, d.Running)
		fmt.Fprintf(w, "| of them answering a request | %d |\n", d.Answering)
		if d.Stopped != "" {
			fmt.Fprintf(w, "| why no more started | %s |\n", d.Stopped)
		}
		for _, f := range d.Failures {
			fmt.Fprintf(w, "| not answering | %s |\n", strings.ReplaceAll(f, "|", "\\|"))
		}
		fmt.Fprintf(w, "| launch rate, two at a time, exec to first answer | %.1f instances/s |\n", d.LaunchPerSec)
		fmt.Fprintf(w, "| host CPU of %d idle instances | %.2f%% of one core |\n", d.IdleN, d.IdleCPUPercent)
		fmt.Fprintf(w, "| host memory per instance: PSS | %.1f MiB |\n", d.PssMiB)
		fmt.Fprintf(w, "| host memory per instance: drop of MemAvailable | %.1f MiB |\n", d.HostMiB)
		fmt.Fprintln(w)
	}
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

func mib(n int) string {
	if n == 0 {
		return "more than 512 MiB"
	}
	return fmt.Sprintf("%d MiB", n)
}

// plots draws what the run measured; Unigo's bars are blue.
func (r *results) plots(dir string) error {
	bar := func(title, unit string, log bool, f func(*settingResult) []float64) panel {
		p := panel{title: title, unit: unit, log: log}
		for _, s := range r.Settings {
			p.labels = append(p.labels, s.Short)
			p.values = append(p.values, median(f(s)))
			p.unigo = append(p.unigo, s.Unigo)
		}
		return p
	}
	if len(r.Settings[0].HelloExit) > 0 {
		if err := plot(filepath.Join(dir, "boot.png"),
			bar("hello: exec to exit", "ms, log scale", true, func(s *settingResult) []float64 { return s.HelloExit }),
			bar("httpd: exec to first answer", "ms, log scale", true, func(s *settingResult) []float64 { return s.HttpdFirst })); err != nil {
			return err
		}
	}
	if len(r.Settings[0].RPS) > 0 {
		if err := plot(filepath.Join(dir, "throughput.png"),
			bar("httpd: requests/s, wrk -c64", "requests/s", false, func(s *settingResult) []float64 { return s.RPS }),
			bar("httpd: p99 latency", "ms, log scale", true, func(s *settingResult) []float64 { return s.P99 }),
			bar("httpd idle: host memory", "MiB PSS", false, func(s *settingResult) []float64 { return s.IdleMiB }),
			bar("httpd after load: host memory", "MiB PSS", false, func(s *settingResult) []float64 { return s.LoadMiB })); err != nil {
			return err
		}
	}
	if len(r.MinMem) > 0 {
		hello := panel{title: "smallest -m: hello", unit: "MiB"}
		httpd := panel{title: "smallest -m: httpd under load", unit: "MiB"}
		for _, m := range r.MinMem {
			short, u := m.Setting, false
			for _, s := range r.Settings {
				if s.Name == m.Setting {
					short, u = s.Short, s.Unigo
				}
			}
			hello.labels, hello.values, hello.unigo = append(hello.labels, short), append(hello.values, float64(m.Hello)), append(hello.unigo, u)
			httpd.labels, httpd.values, httpd.unigo = append(httpd.labels, short), append(httpd.values, float64(m.Httpd)), append(httpd.unigo, u)
		}
		if err := plot(filepath.Join(dir, "memory.png"), hello, httpd); err != nil {
			return err
		}
	}
	if len(r.Sizes) > 0 {
		var ps []panel
		for _, z := range r.Sizes {
			p := panel{title: z.Program + ": bytes booted", unit: "MB"}
			add := func(l string, n int64, u bool) {
				p.labels, p.values, p.unigo = append(p.labels, l), append(p.values, float64(n)/1e6), append(p.unigo, u)
			}
			add("static binary", z.Binary, false)
			add("Unigo image", z.Image, true)
			add("image -s -w", z.Stripped, true)
			add("Linux kernel+initrd", z.Kernel+z.Initramfs, false)
			ps = append(ps, p)
		}
		if err := plot(filepath.Join(dir, "size.png"), ps...); err != nil {
			return err
		}
	}
	return nil
}
