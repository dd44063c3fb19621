package supervisor

import (
	"io/fs"
	"syscall"
)

// changeStamp returns the inode change time (which no tool can set back,
// unlike mtime) and the inode number (which a save-by-rename changes).
func changeStamp(fi fs.FileInfo) (ctimeNanos int64, inode uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return st.Ctim.Nano(), st.Ino
}
