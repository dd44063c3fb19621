package supervisor

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	archive "github.com/moby/go-archive"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// buildContext is a tarred build context, spooled to a temporary file so that
// it can be hashed first and uploaded only when it changed.
type buildContext struct {
	file *os.File
	// dockerfile is the Dockerfile's path inside the tar (slash-separated).
	dockerfile string
	// digest is the sha256 of the tar bytes.
	digest string
}

// Close removes the temporary file.
func (b *buildContext) Close() error {
	name := b.file.Name()
	err := b.file.Close()
	if rmErr := os.Remove(name); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// prepareBuildContext tars dir the way the docker CLI does: .dockerignore is
// applied while tarring (the classic builder itself only uses it to drop the
// Dockerfile and .dockerignore), the Dockerfile and .dockerignore are never
// excluded, owners are normalised to root, and a Dockerfile outside dir is
// added as an extra entry and listed in the sent .dockerignore so that
// `COPY . /x` does not copy it.
func prepareBuildContext(dir, dockerfilePath string) (_ *buildContext, err error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", dir)
	}
	dockerfile, err := os.ReadFile(dockerfilePath)
	if err != nil {
		return nil, fmt.Errorf("reading the Dockerfile: %w", err)
	}
	excludes, err := readDockerignore(dir)
	if err != nil {
		return nil, err
	}

	var extra *tarEntry
	name, inside := pathInContext(dir, dockerfilePath)
	if !inside {
		sum := sha256.Sum256(dockerfile)
		// Named by content so that an unchanged Dockerfile hashes the same.
		extra = &tarEntry{name: ".dockerfile." + hex.EncodeToString(sum[:])[:12], data: dockerfile}
		name = extra.name
	}
	excludes, err = keepBuildFiles(excludes, name)
	if err != nil {
		return nil, fmt.Errorf("invalid .dockerignore in %s: %w", dir, err)
	}

	f, err := os.CreateTemp("", "lunorad-context-*.tar")
	if err != nil {
		return nil, fmt.Errorf("spooling the build context: %w", err)
	}
	bc := &buildContext{file: f, dockerfile: name}
	defer func() {
		if err != nil {
			_ = bc.Close()
		}
	}()
	h := sha256.New()
	if err := writeContextTar(io.MultiWriter(f, h), dir, excludes, extra); err != nil {
		return nil, err
	}
	bc.digest = hex.EncodeToString(h.Sum(nil))
	return bc, nil
}

// pathInContext returns p relative to dir (slash-separated) and whether it
// lies inside dir.
func pathInContext(dir, p string) (string, bool) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// readDockerignore returns the patterns of dir/.dockerignore (none if absent).
func readDockerignore(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return patterns, nil
}

// keepBuildFiles re-includes .dockerignore and the Dockerfile when the
// patterns would exclude them: the daemon needs both (compose and the CLI do
// the same in TrimBuildFilesFromExcludes).
func keepBuildFiles(excludes []string, dockerfile string) ([]string, error) {
	if len(excludes) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(excludes)
	if err != nil {
		return nil, err
	}
	for _, keep := range []string{".dockerignore", dockerfile} {
		if matched, err := pm.MatchesOrParentMatches(keep); err != nil {
			return nil, err
		} else if matched {
			excludes = append(excludes, "!"+keep)
		}
	}
	return excludes, nil
}

// tarEntry is a file added to the context that is not in its directory.
type tarEntry struct {
	name string
	data []byte
}

// writeContextTar writes the filtered tar of dir to w, plus extra if set.
func writeContextTar(w io.Writer, dir string, excludes []string, extra *tarEntry) error {
	rc, err := archive.TarWithOptions(dir, &archive.TarOptions{
		ExcludePatterns: excludes,
		ChownOpts:       &archive.ChownOpts{UID: 0, GID: 0},
	})
	if err != nil {
		return fmt.Errorf("tarring the build context %s: %w", dir, err)
	}
	// Closing the reader also ends the tarring goroutine if we stop early.
	defer rc.Close()
	if extra == nil {
		if _, err := io.Copy(w, rc); err != nil {
			return fmt.Errorf("tarring the build context %s: %w", dir, err)
		}
		return nil
	}
	if err := appendDockerfile(w, rc, *extra); err != nil {
		return fmt.Errorf("tarring the build context %s: %w", dir, err)
	}
	return nil
}

// appendDockerfile copies the tar stream in to w, adds extra, and makes the
// sent .dockerignore list extra and itself so the daemon drops both from the
// context after reading the Dockerfile. Entries are written in a fixed order
// so that the bytes (and the digest) are stable.
func appendDockerfile(w io.Writer, in io.Reader, extra tarEntry) error {
	tr, tw := tar.NewReader(in), tar.NewWriter(w)
	ignoreTail := []byte("\n" + extra.name + "\n.dockerignore\n")
	sawIgnore := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if hdr.Name == ".dockerignore" && hdr.Typeflag == tar.TypeReg {
			sawIgnore = true
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			data = append(data, ignoreTail...)
			hdr.Size = int64(len(data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	add := []tarEntry{extra}
	if !sawIgnore {
		add = append(add, tarEntry{name: ".dockerignore", data: ignoreTail})
	}
	for _, e := range add {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}
