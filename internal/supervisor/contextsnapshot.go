package supervisor

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// defaultRacyWindow is how recent a file's timestamps may be before a
// snapshot of its context is not trusted. Filesystems stamp times with a
// coarse clock (a few ms on Linux, 1-2 s on some others), so a file written
// twice within one tick keeps the same stamps; like git's "racily clean"
// entries, such a context is re-hashed until it has been quiet this long.
const defaultRacyWindow = 2 * time.Second

// snapshotContext fingerprints the metadata (path, mode, size, mtime, ctime,
// inode) of everything under dir, unfiltered, and of the Dockerfile. When
// the fingerprint equals the one taken before the last hash of the context,
// no file can have changed since, and the tar need not be made and hashed
// again: on a cold start that saves the tar + sha256 of the whole context,
// the largest cost lunorad added over a bare create + start.
//
// ok is false when the snapshot must not be trusted: a file changed within
// racyWindow of now, or the walk failed (the full hash then reports why).
func snapshotContext(dir, dockerfilePath string, racyWindow time.Duration) (fingerprint string, ok bool) {
	racyAfter := time.Now().Add(-racyWindow).UnixNano()
	h := sha256.New()
	var buf [8]byte
	add := func(rel string, fi fs.FileInfo) bool {
		ctime, ino := changeStamp(fi)
		mtime := fi.ModTime().UnixNano()
		if mtime >= racyAfter || ctime >= racyAfter {
			return false
		}
		h.Write([]byte(rel))
		h.Write([]byte{0})
		for _, v := range []uint64{uint64(fi.Mode()), uint64(fi.Size()), uint64(mtime), uint64(ctime), ino} {
			binary.LittleEndian.PutUint64(buf[:], v)
			h.Write(buf[:])
		}
		return true
	}
	racy := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info() // lstat: links are sent as links
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !add(rel, fi) {
			racy = true
			return fs.SkipAll
		}
		return nil
	})
	if err != nil || racy {
		return "", false
	}
	fi, err := os.Lstat(dockerfilePath)
	if err != nil || !add("\x00dockerfile\x00"+dockerfilePath, fi) {
		return "", false
	}
	return hex.EncodeToString(h.Sum(nil)), true
}
