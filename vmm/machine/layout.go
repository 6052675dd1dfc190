package machine

import (
	"fmt"

	"unigo.dev/unigo/abi"
)

// buildPageTables writes the identity map of abi's 64-bit entry contract:
// RAM with 2 MiB pages (the first 2 MiB with 4 KiB pages and page 0 absent;
// a hole in RAM unmapped), and the hypercall doorbell page uncached.
func (m *Memory) buildPageTables() error {
	const flags = ptePresent | pteWrite | pteUser
	if err := m.PutU64(abi.PML4Addr, abi.PDPTAddr|flags); err != nil {
		return err
	}
	for i := uint64(0); i < 4; i++ {
		if err := m.PutU64(abi.PDPTAddr+i*8, (abi.PDAddr+i*abi.PageSize)|flags); err != nil {
			return err
		}
	}
	if err := m.PutU64(abi.PDAddr, abi.PT0Addr|flags); err != nil {
		return err
	}
	for p := uint64(1); p < 512; p++ {
		if err := m.PutU64(abi.PT0Addr+p*8, p*abi.PageSize|flags); err != nil {
			return err
		}
	}
	for _, r := range m.Map() {
		for a := max(r.Addr, abi.LargePageSize); a < r.Addr+r.Size; a += abi.LargePageSize {
			if err := m.PutU64(abi.PDAddr+a/abi.LargePageSize*8, a|flags|pteLarge); err != nil {
				return err
			}
		}
	}
	db := uint64(abi.DoorbellAddr)
	return m.PutU64(abi.PDAddr+db/abi.LargePageSize*8, db|flags|pteLarge|ptePCD|ptePWT)
}

// checkMemSize validates a requested guest memory size.
func checkMemSize(size uint64) error {
	switch {
	case size < abi.MinMemSize:
		return fmt.Errorf("guest memory %d KiB is too small: use -m %dM or more", size>>10, abi.MinMemSize>>20)
	case size > abi.MaxMemSize:
		return fmt.Errorf("guest memory %d MiB is too large: at most -m %dM for now", size>>20, abi.MaxMemSize>>20)
	case size%abi.LargePageSize != 0:
		return fmt.Errorf("guest memory %d KiB is not a multiple of 2 MiB: round -m to an even number of MiB", size>>10)
	}
	return nil
}
