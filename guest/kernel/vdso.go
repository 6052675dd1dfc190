package kernel

import "unsafe"

// The vDSO: a minimal ELF shared object in kernel memory, named to the
// runtime by AT_SYSINFO_EHDR, whose one symbol __vdso_clock_gettime (version
// LINUX_2.6) is vdsoClockGettime in cpu_amd64.s. The Go runtime then reads
// the clocks with RDTSC instead of a system call, as on Linux. The layout is
// what the runtime's parser reads (runtime/vdso_linux.go): ELF header, a
// PT_LOAD and a PT_DYNAMIC program header, and the dynamic table's DT_HASH,
// DT_SYMTAB, DT_STRTAB, DT_VERSYM and DT_VERDEF (System V gABI ch. 5; the
// symbol versioning of the LSB).

const (
	vdsoSize = 1024

	vdPhdrs  = 64  // two Elf64_Phdr
	vdDyn    = 176 // nine Elf64_Dyn
	vdHash   = 320 // nbucket, nchain, bucket[1], chain[2]
	vdSymtab = 344 // two Elf64_Sym
	vdVersym = 392 // two uint16
	vdVerdef = 396 // two Elf64_Verdef, each followed by its Elf64_Verdaux
	vdStrtab = 452
	vdStrs   = "\x00__vdso_clock_gettime\x00LINUX_2.6\x00unigo\x00"

	vdNameFn  = 1  // offsets in vdStrs
	vdNameVer = 22 // "LINUX_2.6"
	vdNameLib = 32

	verHashLinux26 = 0x3ae75f6 // ELF hash of "LINUX_2.6"
)

var vdsoImage [vdsoSize]byte

// vdDynamic is the dynamic table: DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ,
// DT_SYMENT, DT_VERSYM, DT_VERDEF, DT_VERDEFNUM, DT_NULL.
var vdDynamic = [...][2]uint64{
	{4, vdHash}, {5, vdStrtab}, {6, vdSymtab}, {10, uint64(len(vdStrs))}, {11, 24},
	{0x6ffffff0, vdVersym}, {0x6ffffffc, vdVerdef}, {0x6ffffffd, 2}, {0, 0},
}

func vdsoClockGettime()
func vdsoClockGettimePC() uintptr

//go:nosplit
func vdPut(off, size uintptr, v uint64) {
	for i := uintptr(0); i < size; i++ {
		vdsoImage[(off+i)%vdsoSize] = byte(v >> (8 * i))
	}
}

// vdsoInit builds the vDSO and returns its address for AT_SYSINFO_EHDR.
//
//go:nosplit
func vdsoInit() uintptr {
	base := uintptr(unsafe.Pointer(&vdsoImage[0]))
	copy(vdsoImage[:], "\x7fELF\x02\x01\x01")
	vdPut(16, 2, 3)  // e_type ET_DYN
	vdPut(18, 2, 62) // e_machine EM_X86_64
	vdPut(20, 4, 1)  // e_version
	vdPut(32, 8, vdPhdrs)
	vdPut(52, 2, 64) // e_ehsize
	vdPut(54, 2, 56) // e_phentsize
	vdPut(56, 2, 2)  // e_phnum
	vdPut(58, 2, 64) // e_shentsize

	vdPut(vdPhdrs, 4, 1) // PT_LOAD at offset 0, vaddr 0
	vdPut(vdPhdrs+4, 4, 5)
	vdPut(vdPhdrs+32, 8, vdsoSize)
	vdPut(vdPhdrs+40, 8, vdsoSize)
	vdPut(vdPhdrs+56, 4, 2) // PT_DYNAMIC
	vdPut(vdPhdrs+56+8, 8, vdDyn)
	vdPut(vdPhdrs+56+16, 8, vdDyn)
	vdPut(vdPhdrs+56+32, 8, 9*16)

	for i, d := range vdDynamic {
		vdPut(vdDyn+uintptr(i)*16, 8, d[0])
		vdPut(vdDyn+uintptr(i)*16+8, 8, d[1])
	}
	vdPut(vdHash, 4, 1)    // nbucket
	vdPut(vdHash+4, 4, 2)  // nchain
	vdPut(vdHash+8, 4, 1)  // bucket[0]: symbol 1
	vdPut(vdHash+12, 4, 0) // chain[0]
	vdPut(vdHash+16, 4, 0) // chain[1]: end

	sym := uintptr(vdSymtab + 24) // symbol 0 stays null
	vdPut(sym, 4, vdNameFn)
	vdPut(sym+4, 1, 0x12) // STB_GLOBAL, STT_FUNC
	vdPut(sym+6, 2, 1)    // defined (any section but SHN_UNDEF)
	vdPut(sym+8, 8, uint64(vdsoClockGettimePC()-base))
	vdPut(vdVersym+2, 2, 2) // symbol 1 has version index 2

	vdPut(vdVerdef, 2, 1)     // vd_version
	vdPut(vdVerdef+2, 2, 1)   // VER_FLG_BASE
	vdPut(vdVerdef+4, 2, 1)   // vd_ndx
	vdPut(vdVerdef+6, 2, 1)   // vd_cnt
	vdPut(vdVerdef+12, 4, 20) // vd_aux
	vdPut(vdVerdef+16, 4, 28) // vd_next
	vdPut(vdVerdef+20, 4, vdNameLib)
	vdPut(vdVerdef+28, 2, 1)
	vdPut(vdVerdef+28+4, 2, 2) // vd_ndx 2: LINUX_2.6
	vdPut(vdVerdef+28+6, 2, 1)
	vdPut(vdVerdef+28+8, 4, verHashLinux26)
	vdPut(vdVerdef+28+12, 4, 20)
	vdPut(vdVerdef+28+20, 4, vdNameVer)
	copy(vdsoImage[vdStrtab:], vdStrs)
	return base
}
