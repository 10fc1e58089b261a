package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// localID reports whether ref is an image ID (sha256:HEX) rather than a
// registry reference: it can only be run where it already is.
func localID(ref string) bool {
	return strings.HasPrefix(ref, "sha256:") && !strings.ContainsAny(ref, "/@")
}

// ensureImage makes sure ref is on e: present, or pulled (with the
// registry credentials) when ref is a registry reference.
func (d *Driver) ensureImage(ctx context.Context, e *engine, ref string) error {
	_, err := e.api.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !errNotFound(err) {
		return fmt.Errorf("inspect image %s on docker host %s: %w", ref, e.Name, err)
	}
	if localID(ref) {
		return fmt.Errorf("image %s is not on docker host %s and it has no registry reference", ref, e.Name)
	}
	d.log.Info("pulling image", "host", e.Name, "image", ref)
	resp, err := e.api.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: d.auth})
	if err == nil {
		err = resp.Wait(ctx)
		_ = resp.Close()
	}
	if err != nil {
		return fmt.Errorf("pull image %s on docker host %s: %w", ref, e.Name, err)
	}
	return nil
}

// HasImage reports whether any host has the image ref.
func (d *Driver) HasImage(ctx context.Context, ref string) (bool, error) {
	for _, e := range d.engines {
		_, err := e.api.ImageInspect(ctx, ref)
		if err == nil {
			return true, nil
		}
		if !errNotFound(err) {
			return false, fmt.Errorf("inspect image %s on docker host %s: %w", ref, e.Name, err)
		}
	}
	return false, nil
}

// EnsureImage pulls ref on the named host ("" = the default) when the host
// lacks it.
func (d *Driver) EnsureImage(ctx context.Context, host, ref string) error {
	var names []string
	if host != "" {
		names = []string{host}
	}
	engines, err := d.enginesFor(names)
	if err != nil {
		return err
	}
	return d.ensureImage(ctx, engines[0], ref)
}

// Prune collects what no rollback can use any more, on every host: the
// stopped containers of app whose artifact keep rejects, then the images
// of app (by the references its containers ran and by the cutover.app
// label) that keep rejects and no container uses, then the app's dangling
// images. It returns how many containers and images it removed.
func (d *Driver) Prune(ctx context.Context, app string, keep func(artifactRef string) bool) (int, error) {
	removed := 0
	var errs []error
	for _, e := range d.engines {
		n, err := d.pruneHost(ctx, e, app, keep)
		removed += n
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s on docker host %s: %w", app, e.Name, err))
		}
	}
	return removed, errors.Join(errs...)
}

func (d *Driver) pruneHost(ctx context.Context, e *engine, app string, keep func(string) bool) (int, error) {
	removed := 0
	mine, err := e.api.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelManaged+"=true", LabelApp+"="+app, LabelHost+"="+e.Name, LabelOwner+"="+d.cfg.Owner)})
	if err != nil {
		return 0, err
	}
	candidates := map[string]bool{} // image references of the app
	for _, c := range mine.Items {
		ref := c.Labels[LabelArtifact]
		if ref != "" {
			candidates[ref] = true
		}
		stopped := c.State == container.StateExited || c.State == container.StateDead || c.State == container.StateCreated
		if !stopped || ref == "" || (keep(ref) && !d.stoppedLongAgo(ctx, e, c.ID)) {
			continue
		}
		if _, err := e.api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{}); err != nil && !errNotFound(err) {
			return removed, fmt.Errorf("remove container %s: %w", shortID(c.ID), err)
		}
		removed++
		d.log.Info("container collected", "host", e.Name, "app", app, "container", shortID(c.ID), "image", ref)
	}

	// Images in use by any container left on the engine, cutover's or not.
	all, err := e.api.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return removed, err
	}
	used := map[string]bool{}
	for _, c := range all.Items {
		used[c.ImageID] = true
	}
	images := map[string][]string{} // image ID -> the references that name it
	for ref := range candidates {
		img, err := e.api.ImageInspect(ctx, ref)
		if errNotFound(err) {
			continue
		}
		if err != nil {
			return removed, err
		}
		images[img.ID] = append(images[img.ID], ref)
	}
	labelled, err := e.api.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", d.imageLabels(app)...)})
	if err != nil {
		return removed, err
	}
	for _, img := range labelled.Items {
		images[img.ID] = append(images[img.ID], img.ID)
		images[img.ID] = append(images[img.ID], img.RepoDigests...)
		images[img.ID] = append(images[img.ID], img.RepoTags...)
	}
	for id, refs := range images {
		if used[id] || anyKept(keep, id, refs) {
			continue
		}
		// Force: the image may have several tags; no container uses it.
		if _, err := e.api.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !errNotFound(err) {
			return removed, fmt.Errorf("remove image %s: %w", shortID(id), err)
		}
		removed++
		d.log.Info("image collected", "host", e.Name, "app", app, "image", shortID(id))
	}

	pruned, err := e.api.ImagePrune(ctx, client.ImagePruneOptions{
		Filters: make(client.Filters).Add("dangling", "true").Add("label", d.imageLabels(app)...)})
	if err != nil {
		return removed, fmt.Errorf("prune dangling images: %w", err)
	}
	for _, r := range pruned.Report.ImagesDeleted {
		if r.Deleted != "" {
			removed++
		}
	}
	return removed, nil
}

// stoppedLongAgo says whether a stopped container ended more than
// StoppedKeep ago: its logs have been kept long enough, even when its
// release is still a rollback target (each config-only release, scale-in
// and revert leaves one).
func (d *Driver) stoppedLongAgo(ctx context.Context, e *engine, id string) bool {
	ins, err := e.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || ins.Container.State == nil {
		return false
	}
	ended, err := time.Parse(time.RFC3339Nano, ins.Container.State.FinishedAt)
	return err == nil && !ended.IsZero() && ended.Year() > 1 && time.Since(ended) > StoppedKeep
}

func anyKept(keep func(string) bool, id string, refs []string) bool {
	if keep(id) {
		return true
	}
	for _, r := range refs {
		if keep(r) {
			return true
		}
	}
	return false
}

// Leftovers lists what the engines still hold of app for this driver's
// owner: its containers in any state and the images labelled with both,
// each as "host NAME: container|image ID (what)". A host name that shares
// an engine with another reports what is on that engine once.
func (d *Driver) Leftovers(ctx context.Context, app string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, e := range d.engines {
		labels := make(client.Filters).Add("label", d.imageLabels(app)...)
		cs, err := e.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labels})
		if err != nil {
			return out, fmt.Errorf("list containers on docker host %s: %w", e.Name, err)
		}
		for _, c := range cs.Items {
			if !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, fmt.Sprintf("host %s: container %s (%s, %s)", e.Name, shortID(c.ID), strings.Join(c.Names, ","), c.State))
			}
		}
		ims, err := e.api.ImageList(ctx, client.ImageListOptions{All: true, Filters: labels})
		if err != nil {
			return out, fmt.Errorf("list images on docker host %s: %w", e.Name, err)
		}
		for _, im := range ims.Items {
			if !seen[im.ID] {
				seen[im.ID] = true
				out = append(out, fmt.Sprintf("host %s: image %s (%s)", e.Name, shortID(im.ID), strings.Join(im.RepoTags, ",")))
			}
		}
	}
	return out, nil
}

// imageLabels are the label filters of app's images of this installation:
// images carry the owner label when the server built them with it (an
// installation without a name sees every image of the app).
func (d *Driver) imageLabels(app string) []string {
	if d.cfg.Owner == "" {
		return []string{LabelApp + "=" + app}
	}
	return []string{LabelApp + "=" + app, LabelOwner + "=" + d.cfg.Owner}
}
