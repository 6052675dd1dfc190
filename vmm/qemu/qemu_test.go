package qemu

import "testing"

func TestCmdline(t *testing.T) {
	got := Cmdline([]string{"prog", "two words", "", "100%"}, []string{"K=V"}, true)
	want := "a:prog a:two%20words a: a:100%25 e:K=V debug"
	if got != want {
		t.Errorf("Cmdline = %q, want %q", got, want)
	}
}
