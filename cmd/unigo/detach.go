package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// readyTimeout bounds how long unigo run -d waits for its instance to boot.
const readyTimeout = 60 * time.Second

// startedHook, if set, runs once the guest has started: a named instance
// releases the state lock then, its ports being bound.
var startedHook func()

// startDetached runs target as an instance in the background: a child unigo
// run, in a session of its own, whose output goes to the instance's log. It
// returns when the guest has started, printing the instance's name, or with
// the child's error.
func startDetached(target string, guestArgs []string, o runOpts) error {
	if strings.HasSuffix(target, ".img") && !isFile(target) {
		return fmt.Errorf("image %s: no such file", target)
	}
	if len(o.files) > 0 && isFile(target) {
		return errors.New("--files goes with a package, which unigo run builds; an image has its files already (unigo build --files)")
	}
	unlock, err := lockState()
	if err != nil {
		return err
	}
	defer unlock()
	in, err := register(instanceMeta{Name: o.name, Image: target, Args: guestArgs, Ports: o.ports, VMM: o.vmm, Memory: o.mem})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(in.dir)
		}
	}()
	if isFile(target) {
		if in.meta.Target, err = filepath.Abs(target); err != nil {
			return err
		}
	} else {
		in.meta.Target = filepath.Join(in.dir, "image.img")
		if err := doBuild(target, buildOpts{output: in.meta.Target, files: o.files}); err != nil {
			return err
		}
	}
	// The child reads instance.json as it starts: it is there before it,
	// without a process until the child's is known ("starting").
	if err := in.save(); err != nil {
		return err
	}
	log, err := os.OpenFile(in.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), envInstance+"="+in.dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{readyW} // descriptor readyFD
	// A session of its own: the terminal's hangup and Ctrl-C do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start the instance: %w", err)
	}
	if err := in.setProcess(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		return err
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(readyR).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s == "ok\n" {
			ok = true
			cmd.Process.Release()
			fmt.Println(in.meta.Name)
			return nil
		}
	case <-time.After(readyTimeout):
		cmd.Process.Kill()
		fmt.Fprintf(os.Stderr, "unigo: the instance did not start within %v; its log:\n", readyTimeout)
	}
	// It failed before the guest started: its log says why.
	cmd.Wait()
	b, _ := os.ReadFile(in.logPath())
	os.Stderr.Write(b)
	if c := cmd.ProcessState.ExitCode(); c > 0 {
		return exitError(c)
	}
	return exitError(exitUsage)
}

// runDetachedChild is the background unigo run of instance dir: its output
// is the log already, and it records how the guest ended.
func runDetachedChild(dir string, guestArgs []string, mem uint64, o runOpts) error {
	in, err := loadInstance(dir)
	if err != nil {
		return err
	}
	curInstance = in
	name := strings.TrimSuffix(filepath.Base(in.meta.Target), ".img")
	if filepath.Dir(in.meta.Target) == in.dir {
		name = strings.TrimSuffix(defaultImageName(in.meta.Image), ".img")
	}
	err = boot(in.meta.Target, append([]string{name}, guestArgs...), mem, o, "")
	return recordEnd(err)
}

// runNamed runs target in the foreground as instance o.name: its output
// goes to the terminal and to the instance's log.
func runNamed(target string, guestArgs []string, mem uint64, o runOpts) error {
	unlock, err := lockState()
	if err != nil {
		return err
	}
	locked := true
	release := func() {
		if locked {
			unlock()
			locked = false
		}
	}
	defer release()
	in, err := register(instanceMeta{Name: o.name, Image: target, Args: guestArgs, Ports: o.ports, VMM: o.vmm, Memory: o.mem})
	if err != nil {
		return err
	}
	if isFile(target) {
		in.meta.Target, _ = filepath.Abs(target)
	}
	if err := in.setProcess(os.Getpid()); err != nil {
		os.RemoveAll(in.dir)
		return err
	}
	log, err := os.OpenFile(in.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		os.RemoveAll(in.dir)
		return err
	}
	defer log.Close()
	o.stdout = io.MultiWriter(os.Stdout, log)
	o.stderr = io.MultiWriter(os.Stderr, log)
	runStderr = o.stderr
	booted := false
	startedHook = func() { booted = true; release() }
	curInstance = in
	err = runTarget(target, guestArgs, mem, o)
	if !booted {
		// It never started: nothing to keep.
		curInstance = nil
		os.RemoveAll(in.dir)
		return err
	}
	return recordEnd(err)
}

// recordEnd writes the instance's exit record from unigo run's result and
// returns the exit status to end with, having printed unigo's own error.
func recordEnd(err error) error {
	var ee exitError
	status := 0
	switch {
	case errors.As(err, &ee):
		status = int(ee)
	case err != nil:
		fmt.Fprintf(runStderr, "unigo: %v\n", err)
		status = exitUsage
	}
	finishInstance(status, "")
	return exitError(status)
}
