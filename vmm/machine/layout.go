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
	// The 2 MiB pages that RAM reaches, from the second: the first is PT0's.
	for _, r := range m.Map() {
		for a := max(r.Addr&^(abi.LargePageSize-1), abi.LargePageSize); a < r.Addr+r.Size; a += abi.LargePageSize {
			if err := m.PutU64(abi.PDAddr+a/abi.LargePageSize*8, a|flags|pteLarge); err != nil {
				return err
			}
		}
	}
	db := uint64(abi.DoorbellAddr)
	if err := m.PutU64(abi.PDAddr+db/abi.LargePageSize*8, db|flags|pteLarge|ptePCD|ptePWT); err != nil {
		return err
	}
	return m.mapROM()
}

// mapROM maps the ROM read-only, so that a write there is a page fault in
// the guest, which its kernel turns into SIGSEGV as Linux does for a write
// to a program's code or read-only data: 2 MiB pages where the ROM fills
// them, and a page table (abi.PTROMAddr) for each 2 MiB page it shares with
// RAM, at its start or its end.
func (m *Memory) mapROM() error {
	const rw, ro = ptePresent | pteWrite | pteUser, ptePresent | pteUser
	at, rom := m.ROM()
	if rom == nil {
		return nil
	}
	end := at + uint64(len(rom))
	pt := uint64(abi.PTROMAddr)
	for a := max(at&^(abi.LargePageSize-1), abi.LargePageSize); a < end; a += abi.LargePageSize {
		pde := a | ro | pteLarge
		if a < at || a+abi.LargePageSize > end {
			if pt == abi.PTROMAddr+2*abi.PageSize {
				return fmt.Errorf("map the read-only image: more than two partial 2 MiB pages")
			}
			for p := a; p < a+abi.LargePageSize; p += abi.PageSize {
				e := uint64(0)
				if p >= at && p < end {
					e = p | ro
				} else if _, err := m.Slice(p, abi.PageSize); err == nil {
					e = p | rw
				}
				if err := m.PutU64(pt+(p-a)/abi.PageSize*8, e); err != nil {
					return err
				}
			}
			pde, pt = pt|rw, pt+abi.PageSize
		}
		if err := m.PutU64(abi.PDAddr+a/abi.LargePageSize*8, pde); err != nil {
			return err
		}
	}
	return nil
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
