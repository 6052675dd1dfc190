package main

import (
	"fmt"
	"sync"
	"time"
)

// minMemory finds, for the settings that take a memory size (the VMs), the
// smallest -m in MiB with which hello prints and exits 0, and with which
// httpd serves a wrk load (2 threads, 64 connections, 3 s) without errors
// and still answers after it. It bisects between 1 and 512 MiB (in 2 MiB
// steps for Unigo's own monitor, whose -m is a multiple of 2 MiB), assuming
// that what works with some memory works with more.
func minMemory(p *programs, ss []setting) []minMemRow {
	var rows []minMemRow
	for _, s := range ss {
		if s.short != "Unigo KVM" && s.short != "Linux VM" {
			continue // QEMU's Unigo guest is the same kernel as the own monitor's
		}
		row := minMemRow{Setting: s.name}
		step := 1
		if s.unigo {
			step = 2
		}
		row.Hello = bisect(step, func(m int) bool {
			_, _, err := helloRun(s.hello(m), time.Minute)
			return err == nil
		})
		progress("memory: %s hello works with %d MiB", s.name, row.Hello)
		row.Httpd = bisect(step, func(m int) bool { return serves(s, m) })
		progress("memory: %s httpd works with %d MiB", s.name, row.Httpd)
		rows = append(rows, row)
	}
	return rows
}

func serves(s setting, m int) bool {
	port := freePort()
	in, err := startHttpd(s.httpd(port, m), port, time.Minute)
	if err != nil {
		return false
	}
	defer in.stop()
	w, err := wrk(in.url, 3*time.Second)
	return err == nil && !w.errors && w.requests > 0 && in.get(10) == nil && in.alive()
}

// bisect returns the smallest multiple of step MiB up to 512 for which ok
// holds, or 0 if it does not hold at 512.
func bisect(step int, ok func(MiB int) bool) int {
	lo, hi := 0, 512/step // in steps: ok(lo) is false, ok(hi) is true
	if !ok(hi * step) {
		return 0
	}
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if ok(m * step) {
			hi = m
		} else {
			lo = m
		}
	}
	return hi * step
}

// density starts idle httpd instances on the own monitor (default -m)
// until -density of them run or the host has less than -reserve MiB
// available: first -idle of them, whose CPU use while idle is measured over
// -idle-for, then the rest; then asks each for one answer.
func density(p *programs) *densityResult {
	var ss []setting
	for _, s := range p.settings() {
		if s.short == "Unigo KVM" {
			ss = append(ss, s)
		}
	}
	s := ss[0]
	d := &densityResult{Target: *dens}
	avail0 := memAvailableKiB()
	var (
		mu  sync.Mutex
		ins []*instance
	)
	defer func() {
		var wg sync.WaitGroup
		for _, in := range ins {
			wg.Add(1)
			go func() { defer wg.Done(); in.stop() }()
		}
		wg.Wait()
	}()
	// launch starts n more instances, two at a time (this machine has two
	// cores), and returns how long they took until each answered.
	launch := func(n int) (time.Duration, error) {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		next := make(chan int)
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range next {
					port := freePort()
					in, err := startHttpd(s.httpd(port, 0), port, time.Minute)
					if err != nil {
						select {
						case errs <- err:
						default:
						}
						return
					}
					mu.Lock()
					ins = append(ins, in)
					mu.Unlock()
				}
			}()
		}
	feed:
		for i := 0; i < n; i++ {
			if memAvailableKiB() < *reserve*1024 {
				select {
				case errs <- fmt.Errorf("the host has less than %d MiB available", *reserve):
				default:
				}
				break
			}
			select {
			case next <- i:
			case err := <-errs:
				errs <- err
				break feed
			}
		}
		close(next)
		wg.Wait()
		select {
		case err := <-errs:
			return time.Since(t0), err
		default:
			return time.Since(t0), nil
		}
	}

	first := min(*idleN, *dens)
	took, err := launch(first)
	d.LaunchPerSec = float64(len(ins)) / took.Seconds()
	progress("density: %d instances up in %v", len(ins), took)
	if err == nil && len(ins) == first {
		time.Sleep(5 * time.Second) // let their start-up settle
		t0 := sumTicks(ins)
		time.Sleep(*idleFor)
		d.IdleN = len(ins)
		d.IdleCPUPercent = float64(sumTicks(ins)-t0) / 100 / idleFor.Seconds() * 100
		progress("density: %d idle instances used %.2f%% of a core", d.IdleN, d.IdleCPUPercent)
		if *dens > first {
			_, err = launch(*dens - first)
		}
	}
	if err != nil {
		d.Stopped = err.Error()
	}
	d.Running = len(ins)
	for _, in := range ins {
		err := in.get(1)
		if err == nil && in.alive() {
			d.Answering++
			continue
		}
		if !in.alive() {
			e := <-in.done
			in.done <- e // for stop
			err = fmt.Errorf("exited: %v", e)
		}
		out := in.out.String()
		d.Failures = append(d.Failures, fmt.Sprintf("%v; its output ends: %q", err, out[max(0, len(out)-300):]))
	}
	pss := 0
	for _, in := range ins {
		pss += pssKiB(in.cmd.Process.Pid)
	}
	if d.Running > 0 {
		d.PssMiB = float64(pss) / 1024 / float64(d.Running)
		d.HostMiB = float64(avail0-memAvailableKiB()) / 1024 / float64(d.Running)
	}
	progress("density: %d running, %d answering", d.Running, d.Answering)
	return d
}

func sumTicks(ins []*instance) int {
	t := 0
	for _, in := range ins {
		t += cpuTicks(in.cmd.Process.Pid)
	}
	return t
}
