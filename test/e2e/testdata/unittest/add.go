// Package unittest is a small package whose tests `unigo test` runs.
package unittest

// Add returns a+b.
func Add(a, b int) int { return a + b }
