package config

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// image validates the `image` option with Lunora's messages, normalises it
// as normalizeContainerImage does, resolves relative paths against the
// config's folder and checks that the build inputs exist.
func (l *loader) image(p string, n *yaml.Node) (Image, bool) {
	if s, ok := stringValue(n); ok {
		return l.imagePath(p, n, s)
	}
	if !isMapping(n) {
		l.problem(p, n, "`image` must be a non-empty path or a { registry } reference")
		return Image{}, false
	}
	sub := l.knownKeys(p, n, imageObjectKeys)
	build, hasBuild := sub["build"]
	registry, hasRegistry := sub["registry"]
	if hasBuild && hasRegistry {
		l.problem(p, n, "`image` takes either `build` or `registry`, not both")
		return Image{}, false
	}
	if hasBuild {
		dir, ok := stringValue(build.Value)
		if !ok || dir == "" {
			l.problem(p+".build", build.Value, "`image.build` must be a non-empty source directory for Railpack to build")
			return Image{}, false
		}
		abs := l.abs(trimSlash(dir))
		if msg := checkDir("image.build", dir, abs); msg != "" {
			l.problem(p+".build", build.Value, msg)
			return Image{}, false
		}
		return Image{Kind: ImageBuild, BuildDir: abs, Source: dir}, true
	}
	const registryMsg = "`image.registry` must be a non-empty fully-qualified image reference"
	if !hasRegistry {
		l.problem(p, n, registryMsg)
		return Image{}, false
	}
	ref, ok := stringValue(registry.Value)
	if !ok || ref == "" {
		l.problem(p+".registry", registry.Value, registryMsg)
		return Image{}, false
	}
	if strings.ContainsFunc(ref, unicode.IsSpace) {
		// Lunora lets it through; Docker would refuse it at pull time, far from this line.
		l.problemf(p+".registry", registry.Value, "`image.registry` %q must not contain whitespace", ref)
		return Image{}, false
	}
	return Image{Kind: ImageRegistry, Reference: ref, Source: ref}, true
}

// imagePath handles a string image: a directory holding a Dockerfile, or a
// path whose last element starts with "Dockerfile" (Dockerfile.dev counts).
func (l *loader) imagePath(p string, n *yaml.Node, s string) (Image, bool) {
	if s == "" {
		l.problem(p, n, "`image` must be a non-empty path or a { registry } reference")
		return Image{}, false
	}
	if strings.Contains(s, ":") {
		l.problemf(p, n, "`image` string \"%s\" looks like a registry reference — pass it as { registry: \"%s\" } instead. Plain strings are local Dockerfile paths.", s, s)
		return Image{}, false
	}
	img := Image{Kind: ImageDockerfile, Source: s}
	if strings.HasPrefix(path.Base(trimSlash(s)), "Dockerfile") {
		img.DockerfilePath = l.abs(s)
		img.BuildContext = filepath.Dir(img.DockerfilePath)
		if msg := checkDockerfile(s, img.DockerfilePath); msg != "" {
			l.problem(p, n, msg)
			return Image{}, false
		}
		return img, true
	}
	img.BuildContext = l.abs(trimSlash(s))
	img.DockerfilePath = filepath.Join(img.BuildContext, "Dockerfile")
	if msg := checkDir("image", s, img.BuildContext); msg != "" {
		l.problem(p, n, msg)
		return Image{}, false
	}
	if msg := checkDockerfile(s, img.DockerfilePath); msg != "" {
		l.problem(p, n, msg)
		return Image{}, false
	}
	return img, true
}

// trimSlash drops one trailing "/", as normalizeContainerImage does, but
// keeps the root directory a directory.
func trimSlash(s string) string {
	if t := strings.TrimSuffix(s, "/"); t != "" {
		return t
	}
	return s
}

// abs resolves a non-empty path written in the config (posix style, as in
// Lunora) against the config file's folder.
func (l *loader) abs(p string) string {
	local := filepath.FromSlash(p)
	if filepath.IsAbs(local) {
		return filepath.Clean(local)
	}
	return filepath.Join(l.dir, local)
}

// checkDir explains why abs (written as src) is not a usable directory.
func checkDir(field, src, abs string) string {
	info, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "`" + field + "` \"" + src + "\": the directory " + quote(abs) + " does not exist"
	case err != nil:
		return "`" + field + "` \"" + src + "\": cannot read " + quote(abs) + ": " + statReason(err)
	case !info.IsDir():
		return "`" + field + "` \"" + src + "\": " + quote(abs) + " is not a directory; name a directory holding a Dockerfile, or a path to a Dockerfile"
	}
	return ""
}

// checkDockerfile explains why abs (from the image string src) is not a
// readable Dockerfile.
func checkDockerfile(src, abs string) string {
	info, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "`image` \"" + src + "\": no Dockerfile at " + quote(abs)
	case err != nil:
		return "`image` \"" + src + "\": cannot read " + quote(abs) + ": " + statReason(err)
	case info.IsDir():
		return "`image` \"" + src + "\": " + quote(abs) + " is a directory, not a Dockerfile"
	}
	return ""
}

func quote(s string) string { return "\"" + s + "\"" }

// statReason is the cause of a stat error without the path, which the
// message already names.
func statReason(err error) string {
	if inner := errors.Unwrap(err); inner != nil {
		return inner.Error()
	}
	return err.Error()
}
