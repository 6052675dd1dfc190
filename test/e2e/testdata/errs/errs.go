// Package errs names the outcome of a call for the test programs: the
// errno's text where there is one, so that the guest's output and
// Linux's compare whatever the wrapping, and "ok" for none.
package errs

import (
	"errors"
	"syscall"
)

// Name returns err's errno text, its whole text without one, or "ok".
func Name(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e.Error()
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}
