package main

import (
	"strings"
	"testing"
)

// TestNames checks which instance names are accepted and the default name
// an image gets.
func TestNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"web": true, "web-2.prod_a": true, "9lives": true, strings.Repeat("a", 64): true,
		"": false, "-web": false, ".web": false, "_web": false, "we b": false, "wéb": false,
		"a/b": false, strings.Repeat("a", 65): false,
	} {
		if got := checkName(name) == nil; got != ok {
			t.Errorf("checkName(%q) accepted %v, want %v", name, got, ok)
		}
	}
	for image, want := range map[string]string{
		"/tmp/httpd.img": "httpd", "site.img": "site", "my app.img": "my-app", "café.img": "caf-",
		".img": "unigo", "-x.img": "unigo", "/": "unigo", strings.Repeat("b", 70) + ".img": "unigo",
	} {
		if got := imageBase(image); got != want {
			t.Errorf("imageBase(%q) = %q, want %q", image, got, want)
		}
	}
}
