// Package unigo carries the kernel's source inside the unigo command, so that
// an installed unigo builds images from any folder, offline: package build
// writes it to the user's cache and links it into the program from there.
package unigo

import "embed"

// KernelSource is the guest side of this module: its go.mod and go.sum,
// package abi, the wire protocols both sides speak (proto) and the guest
// tree.
//
//go:embed go.mod go.sum abi proto guest
var KernelSource embed.FS

// ModulePath is this module's path.
const ModulePath = "unigo.dev/unigo"
