// Command procself reads the files a program finds about itself and its
// user: /proc/self/cmdline, and through os/user /etc/passwd and /etc/group.
package main

import (
	"fmt"
	"os"
	"os/user"
	"strings"
)

func main() {
	b, err := os.ReadFile("/proc/self/cmdline")
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	fmt.Printf("cmdline: %q %v, the same as os.Args[1:]: %v\n", args[1:], err, strings.Join(args[1:], " ") == strings.Join(os.Args[1:], " "))
	u, err := user.Current()
	if err != nil {
		fmt.Println("user:", err)
		os.Exit(1)
	}
	fmt.Printf("user: %s uid %s gid %s home %s\n", u.Username, u.Uid, u.Gid, u.HomeDir)
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		fmt.Println("group:", err)
		os.Exit(1)
	}
	fmt.Println("group:", g.Name)
	if _, err := user.Lookup("nobody"); err != nil {
		fmt.Println("nobody:", err)
	}
}
