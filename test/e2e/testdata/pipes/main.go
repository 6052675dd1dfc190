// Pipes moves bytes through pipes: 1 MiB through one (its 64 KiB ring wraps
// sixteen times), then through pipes made and closed one after another, and
// holds as many open as the kernel gives.
package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

func main() {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Println("pipe:", err)
		os.Exit(1)
	}
	go func() { w.Write(data); w.Close() }()
	got, err := io.ReadAll(r)
	r.Close()
	fmt.Println("1 MiB through one pipe:", err == nil && bytes.Equal(got, data), fmt.Sprintf("%x", sha256.Sum256(got))[:16])
	ok := 0
	for i := 0; i < 40; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Println("pipe", i, err)
			break
		}
		w.Write([]byte{byte(i)})
		w.Close()
		b, _ := io.ReadAll(r)
		r.Close()
		if len(b) == 1 && b[0] == byte(i) {
			ok++
		}
	}
	fmt.Println("pipes made and closed:", ok)
	var open []*os.File
	for {
		r, w, err := os.Pipe()
		if err != nil {
			break
		}
		open = append(open, r, w)
	}
	fmt.Println("open at once:", len(open)/2)
}
