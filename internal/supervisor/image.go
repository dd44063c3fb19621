package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"go.uber.org/zap"

	"github.com/lunora/lunorad/internal/config"
	"github.com/lunora/lunorad/internal/lifecycle"
)

// pullTimeout bounds a registry pull. A pull is a stream, but an unreachable
// registry can stall on DNS or TLS for a long time, and EnsureImage callers
// wait for it.
const pullTimeout = 15 * time.Minute

var errRailpack = errors.New("`image: {build: ...}` (Railpack) is not supported by lunorad yet; use a Dockerfile path or directory")

// flightResult is what one shared EnsureImage flight produced.
type flightResult struct {
	image string
	// started is the flightSeq value taken when the flight began.
	started uint64
}

// EnsureImage builds (Dockerfile) or finds (registry) the image of c and
// returns its image ID. Concurrent calls for the same image share one flight.
// A Dockerfile build is skipped when the tarred context and build inputs are
// unchanged since the last successful build of this run. Every failure is a
// *lifecycle.BuildError.
func (d *Docker) EnsureImage(ctx context.Context, c *config.Container) (string, error) {
	if c == nil {
		return "", errors.New("supervisor: EnsureImage called with a nil container")
	}
	switch c.Image.Kind {
	case config.ImageDockerfile:
		key := strings.Join([]string{"dockerfile", c.Name, c.Image.BuildContext, c.Image.DockerfilePath}, "\x00")
		return d.sharedImage(ctx, key, func(ctx context.Context) (string, error) { return d.buildDockerfile(ctx, c) })
	case config.ImageRegistry:
		key := strings.Join([]string{"registry", c.Name, c.Image.Reference}, "\x00")
		return d.sharedImage(ctx, key, func(ctx context.Context) (string, error) { return d.registryImage(ctx, c) })
	case config.ImageBuild:
		return "", &lifecycle.BuildError{Container: c.Name, Err: errRailpack}
	default:
		return "", &lifecycle.BuildError{Container: c.Name, Err: fmt.Errorf("unsupported image kind %q", c.Image.Kind)}
	}
}

// sharedImage runs fn once per key for all concurrent callers, on d.buildCtx
// so that a build outlives a caller that gives up. A caller that joined a
// flight which had already begun before it asked may have joined a build of
// older files (hot reload), so it asks once more: that second flight starts
// after the call began and, when nothing changed, is a cache hit.
func (d *Docker) sharedImage(ctx context.Context, key string, fn func(context.Context) (string, error)) (string, error) {
	asked := d.flightSeq.Load()
	for attempt := 0; ; attempt++ {
		ch := d.builds.DoChan(key, func() (any, error) {
			started := d.flightSeq.Add(1)
			img, err := fn(d.buildCtx)
			return flightResult{image: img, started: started}, err
		})
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case r := <-ch:
			res, _ := r.Val.(flightResult)
			if res.started > asked || attempt > 0 {
				return res.image, r.Err
			}
		}
	}
}

// buildDockerfile tars the context, and builds it unless the same inputs were
// built before in this run and the image still exists. When no file of the
// context changed since the last tar (snapshotContext), the tar is skipped.
func (d *Docker) buildDockerfile(ctx context.Context, c *config.Container) (string, error) {
	tags := []string{buildTag(c.Name), scopedBuildTag(d.configID, c.Name)}
	key := c.Name + "\x00" + c.Image.BuildContext + "\x00" + c.Image.DockerfilePath
	snapshot, trusted := snapshotContext(c.Image.BuildContext, c.Image.DockerfilePath, d.racyWindow)
	if trusted {
		d.mu.Lock()
		prev := d.built[key]
		d.mu.Unlock()
		if prev.snapshot == snapshot {
			digest := buildDigest(prev.contextDigest, prev.dockerfile, tags, c.BuildArgs)
			if id, ok := d.cachedBuild(ctx, key, digest); ok {
				d.log.Debug("build context untouched; reusing image", zap.String("container", c.Name), zap.String("image", id))
				return id, nil
			}
		}
	} else {
		snapshot = ""
	}

	bc, err := prepareBuildContext(c.Image.BuildContext, c.Image.DockerfilePath)
	if err != nil {
		return "", &lifecycle.BuildError{Container: c.Name, Err: err}
	}
	defer bc.Close()

	digest := buildDigest(bc.digest, bc.dockerfile, tags, c.BuildArgs)
	built := builtImage{digest: digest, contextDigest: bc.digest, dockerfile: bc.dockerfile, snapshot: snapshot}
	if id, ok := d.cachedBuild(ctx, key, digest); ok {
		built.imageID = id
		d.mu.Lock()
		d.built[key] = built // same image, fresher snapshot
		d.mu.Unlock()
		d.log.Debug("build context unchanged; reusing image", zap.String("container", c.Name), zap.String("image", id))
		return id, nil
	}

	args := make(map[string]*string, len(c.BuildArgs))
	for k, v := range c.BuildArgs {
		args[k] = &v
	}
	opts := build.ImageBuildOptions{
		Tags:       tags,
		Dockerfile: bc.dockerfile,
		BuildArgs:  args,
		Labels:     imageLabels(d.configID, c.Name),
		// The classic builder needs no BuildKit session on Engine 20.10.
		Version:     build.BuilderV1,
		Remove:      true,
		ForceRemove: true,
	}
	log := d.log.With(zap.String("container", c.Name))
	began := time.Now()
	id, err := d.runBuild(ctx, c.Name, bc.file, opts, log)
	var be *lifecycle.BuildError
	if errors.As(err, &be) && vanishedLayer.MatchString(be.Err.Error()) {
		log.Info("a cached layer was deleted during the build; building again", zap.Error(be.Err))
		id, err = d.runBuild(ctx, c.Name, bc.file, opts, log)
	}
	if err != nil {
		return "", err
	}
	if id == "" { // no aux ID in the stream: ask for the tag instead
		ictx, cancel := d.callCtx(ctx)
		insp, err := d.api.ImageInspect(ictx, tags[0])
		cancel()
		if err != nil {
			return "", &lifecycle.BuildError{Container: c.Name, Err: fmt.Errorf("the build finished but image %s cannot be inspected: %w", tags[0], err)}
		}
		id = insp.ID
	}
	built.imageID = id
	d.mu.Lock()
	d.built[key] = built
	d.mu.Unlock()
	log.Info("image built", zap.String("image", id), zap.Strings("tags", tags), zap.Duration("took", time.Since(began)))
	return id, nil
}

// vanishedLayer matches a build that failed because a cached layer it was
// building on was deleted meanwhile, as removing another config's images
// built from the same directory (lunorad down --images, a test's cleanup)
// does when it prunes their untagged parents. Engine 20.10 says "failed to
// get digest sha256:…: open …: no such file or directory". Building again
// makes the layer anew.
var vanishedLayer = regexp.MustCompile(`failed to get digest sha256:[0-9a-f]+|No such image: sha256:[0-9a-f]+`)

// runBuild sends one build of the context file and reads its output.
func (d *Docker) runBuild(ctx context.Context, container string, file io.ReadSeeker, opts build.ImageBuildOptions, log *zap.Logger) (string, error) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return "", &lifecycle.BuildError{Container: container, Err: fmt.Errorf("rewinding the build context: %w", err)}
	}
	// The client sends the file as the request body, which net/http closes
	// once sent; the caller closes it, so that a retry can rewind it.
	resp, err := d.api.ImageBuild(ctx, io.NopCloser(file), opts)
	if err != nil {
		// A Dockerfile the daemon cannot parse fails the request itself.
		return "", &lifecycle.BuildError{Container: container, Err: err}
	}
	defer resp.Body.Close()
	id, step, err := readBuildStream(resp.Body, func(line string) { log.Debug("build", zap.String("output", line)) })
	if err != nil {
		return "", &lifecycle.BuildError{Container: container, Step: step, Err: err}
	}
	return id, nil
}

// cachedBuild returns the image of an earlier build with the same digest, if
// that image still exists on the engine.
func (d *Docker) cachedBuild(ctx context.Context, key, digest string) (string, bool) {
	d.mu.Lock()
	prev, ok := d.built[key]
	d.mu.Unlock()
	if !ok || prev.digest != digest {
		return "", false
	}
	ictx, cancel := d.callCtx(ctx)
	defer cancel()
	if _, err := d.api.ImageInspect(ictx, prev.imageID); err != nil {
		return "", false // removed behind our back (or the engine hiccuped): rebuild
	}
	return prev.imageID, true
}

// buildDigest combines the context's content hash with every other build input.
func buildDigest(contextDigest, dockerfile string, tags []string, buildArgs map[string]string) string {
	h := sha256.New()
	fmt.Fprintf(h, "context=%s\ndockerfile=%s\ntags=%s\n", contextDigest, dockerfile, strings.Join(tags, ","))
	keys := make([]string, 0, len(buildArgs))
	for k := range buildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "arg %q=%q\n", k, buildArgs[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// readBuildStream reads the classic builder's JSON stream to EOF. The API
// answers 200 for a build that fails at a step: the failure arrives as an
// error line in the stream. It returns the image ID (from the aux result, ""
// if none came), the last "Step N/M : ..." line seen, and the daemon's error
// message for a failed build.
func readBuildStream(r io.Reader, logLine func(string)) (imageID, lastStep string, err error) {
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return imageID, lastStep, nil
			}
			return "", lastStep, fmt.Errorf("reading the build output: %w", err)
		}
		for _, line := range strings.Split(m.Stream, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			logLine(line)
			if strings.HasPrefix(line, "Step ") && strings.Contains(line, " : ") {
				lastStep = line
			}
		}
		if m.Error != nil {
			return "", lastStep, errors.New(strings.TrimSpace(m.Error.Message))
		}
		if m.Aux != nil {
			var res build.Result
			if json.Unmarshal(*m.Aux, &res) == nil && res.ID != "" {
				imageID = res.ID
			}
		}
	}
}

// registryImage uses a registry image present on the engine, and otherwise
// tries one pull.
func (d *Docker) registryImage(ctx context.Context, c *config.Container) (string, error) {
	ref := c.Image.Reference
	ictx, cancel := d.callCtx(ctx)
	insp, err := d.api.ImageInspect(ictx, ref)
	cancel()
	if err == nil {
		return insp.ID, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return "", &lifecycle.BuildError{Container: c.Name, Registry: true, Err: fmt.Errorf("inspecting image %q: %w", ref, err)}
	}
	if err := d.pull(ctx, ref); err != nil {
		return "", &lifecycle.BuildError{Container: c.Name, Registry: true, Err: fmt.Errorf(
			"image %q is not present on the Docker Engine and could not be pulled: %w; build it with `docker build -t %s .` or load it with `docker load`",
			ref, err, ref)}
	}
	ictx, cancel = d.callCtx(ctx)
	insp, err = d.api.ImageInspect(ictx, ref)
	cancel()
	if err != nil {
		return "", &lifecycle.BuildError{Container: c.Name, Registry: true, Err: fmt.Errorf("image %q was pulled but cannot be inspected: %w", ref, err)}
	}
	return insp.ID, nil
}

// pull pulls ref and reads the progress stream, where pull errors arrive.
func (d *Docker) pull(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	rc, err := d.api.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	log := d.log.With(zap.String("image", ref))
	dec := json.NewDecoder(rc)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the pull output: %w", err)
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		if m.Status != "" && m.Progress == nil {
			log.Debug("pull", zap.String("status", m.Status), zap.String("id", m.ID))
		}
	}
}
