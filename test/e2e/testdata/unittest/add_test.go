package unittest

import (
	"fmt"
	"os"
	"testing"
)

func TestAdd(t *testing.T) {
	if Add(2, 3) != 5 {
		t.Fatal("2+3 != 5")
	}
}

func TestSkipped(t *testing.T) { t.Skip("skipped on purpose") }

// TestEnv fails when UNIGO_FAIL is set, to check that failures come out.
func TestEnv(t *testing.T) {
	if os.Getenv("UNIGO_FAIL") != "" {
		t.Fatal("failing on request")
	}
}

func ExampleAdd() {
	fmt.Println(Add(1, 2))
	// Output: 3
}
