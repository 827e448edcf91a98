package hsm

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

// hsmenv_dlcheck loads path as pkcs11.New does and writes into buf why that
// fails: dlopen's own text, or that C_GetFunctionList is missing. It
// returns 0 if the library loads and has the symbol. Everything happens in
// this one call, on one thread, so dlerror reports this dlopen.
static int hsmenv_dlcheck(const char *path, char *buf, size_t n) {
	void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(buf, n, "%s", e ? e : "dlopen failed");
		return 1;
	}
	void *f = dlsym(h, "C_GetFunctionList");
	dlclose(h);
	if (f == NULL) {
		snprintf(buf, n, "it has no C_GetFunctionList: not a PKCS#11 module");
		return 1;
	}
	return 0;
}
*/
import "C"

import (
	"debug/elf"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"
)

// loadFailure says why the PKCS#11 library at path does not load:
// miekg/pkcs11's New returns nil without a reason, so the library is loaded
// again here, as New does (dlopen, then dlsym of C_GetFunctionList), to get
// the dynamic loader's own text ("cannot open shared object file: No such
// file or directory", "invalid ELF header", "wrong ELF class: ELFCLASS32",
// a dependency that is missing, ...). glibc reports a library built for
// another machine as "No such file or directory", so the file's ELF
// header is read first (debug/elf) to name its machine instead. Only
// called after New failed.
func loadFailure(path string) string {
	if why := wrongMachine(path); why != "" {
		return why
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var buf [512]C.char
	if C.hsmenv_dlcheck(cpath, &buf[0], C.size_t(len(buf))) == 0 {
		return "the library loads, but its C_GetFunctionList failed"
	}
	// dlopen starts its text with the path, which the caller names already.
	return strings.TrimPrefix(C.GoString(&buf[0]), path+": ")
}

// elfMachine is the ELF machine of the running program.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "386": elf.EM_386, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
	"ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV, "loong64": elf.EM_LOONGARCH,
}

// wrongMachine says if the file at path is an ELF object for another
// machine or word size than this program; "" if it is not, or not ELF, or
// unreadable (dlopen then says why).
func wrongMachine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	e, err := elf.NewFile(f)
	if err != nil {
		return ""
	}
	want, known := elfMachine[runtime.GOARCH]
	wantClass := elf.ELFCLASS64
	if strings.HasSuffix(runtime.GOARCH, "386") || runtime.GOARCH == "arm" {
		wantClass = elf.ELFCLASS32
	}
	if known && (e.Machine != want || e.Class != wantClass) {
		return fmt.Sprintf("it is built for %s (%s), this program for %s (%s)", strings.TrimPrefix(e.Machine.String(), "EM_"), e.Class, strings.TrimPrefix(want.String(), "EM_"), wantClass)
	}
	return ""
}
