package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// contextTime is every entry's mtime: the same tree gives the same bytes.
var contextTime = time.Unix(0, 0).UTC()

// ctxEntry is one file of a build context, checked before anything is sent.
type ctxEntry struct {
	rel    string // slash-separated, relative to the context root
	mode   fs.FileMode
	size   int64
	target string // a symlink's target
}

// scanContext walks dir in lexical order and returns its entries: regular
// files, directories and symlinks whose target stays inside dir. Anything
// else (a device, a socket, a link out of the tree) is refused, as is a
// tree whose files add up to more than max bytes.
func scanContext(dir string, max int64) ([]ctxEntry, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var (
		entries []ctxEntry
		total   int64
	)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := ctxEntry{rel: rel, mode: fi.Mode()}
		switch {
		case fi.Mode().IsDir():
		case fi.Mode().IsRegular():
			e.size = fi.Size()
			if total += e.size; total > max {
				return fmt.Errorf("%w: the build context is larger than %d bytes", core.ErrInvalid, max)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if escapes(rel, target) {
				return fmt.Errorf("%w: build context: symlink %s points outside the context (%s)", core.ErrInvalid, rel, target)
			}
			e.target = target
		default:
			return fmt.Errorf("%w: build context: %s is a %s, not a file, directory or symlink", core.ErrInvalid, rel, fi.Mode().Type())
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// escapes says whether a symlink at rel with target leaves the tree.
func escapes(rel, target string) bool {
	if path.IsAbs(filepath.ToSlash(target)) {
		return true
	}
	joined := path.Join(path.Dir(rel), filepath.ToSlash(target))
	return joined == ".." || strings.HasPrefix(joined, "../")
}

// writeContext writes entries of dir as a tar stream with fixed times and
// owners, modes kept.
func writeContext(w io.Writer, dir string, entries []ctxEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.rel,
			Mode:    int64(e.mode.Perm()),
			ModTime: contextTime,
		}
		// tar encodes the special bits in its own positions.
		if e.mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if e.mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if e.mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case e.mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.mode&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.target
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := copyFile(tw, filepath.Join(dir, filepath.FromSlash(e.rel)), e.size); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyFile copies exactly size bytes of p: a file that changed since the
// scan fails the build rather than sending something else.
func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size+1))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("build context: %s changed while it was being sent", p)
	}
	return nil
}

// dockerfilePath checks that the Dockerfile is a file inside the context
// and returns its slash-separated path there.
func dockerfilePath(dir, dockerfile string, entries []ctxEntry) (string, error) {
	if dockerfile == "" {
		dockerfile = DefaultDockerfile
	}
	rel := path.Clean(filepath.ToSlash(dockerfile))
	if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: dockerfile %q must be inside the build context", core.ErrInvalid, dockerfile)
	}
	for _, e := range entries {
		if e.rel == rel && (e.mode.IsRegular() || e.mode&fs.ModeSymlink != 0) {
			return rel, nil
		}
	}
	return "", fmt.Errorf("%w: no dockerfile at %s in the build context", core.ErrInvalid, rel)
}
