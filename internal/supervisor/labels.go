package supervisor

import (
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/filters"
)

// Ownership labels. Every container lunorad creates carries all of them, and
// every image it builds carries the first three. They are how a restarted
// daemon finds what it owns (ListOwned, RemoveAllOwned, Exits) without ever
// touching objects of other tools or of another lunorad config on the same
// engine.
//
// A container inherits its image's labels, so `docker run lunora-x:build`
// by hand would carry LabelManaged and LabelConfig too. A container is
// therefore owned only when it also has LabelInstance, which only Run sets.
const (
	// LabelManaged marks an object as created by lunorad; value LabelManagedValue.
	LabelManaged      = "sh.lunora.managed"
	LabelManagedValue = "true"
	// LabelConfig is the identity of the lunorad.yaml that owns the object
	// (config.(*Config).ID()), so two daemons with different configs never
	// adopt or remove each other's containers.
	LabelConfig = "sh.lunora.config"
	// LabelContainer is the export name of the container definition.
	LabelContainer = "sh.lunora.container"
	// LabelInstance is the instance id, verbatim (any characters).
	LabelInstance = "sh.lunora.instance"
	// LabelConfigHash identifies the effective configuration the container was
	// created with; re-adoption requires it to match the current one.
	LabelConfigHash = "sh.lunora.config-hash"
	// LabelGeneration is the instance's run generation, in decimal.
	LabelGeneration = "sh.lunora.generation"
)

// ownershipPrefix is reserved: user labels under it are dropped so that they
// can never override (or fake) ownership.
const ownershipPrefix = "sh.lunora."

// configLabels mark an object (image, network) as this daemon's, for configID.
func configLabels(configID string) map[string]string {
	return map[string]string{LabelManaged: LabelManagedValue, LabelConfig: configID}
}

// configFilter selects the objects configLabels marks.
func configFilter(configID string) filters.Args {
	return filters.NewArgs(
		filters.Arg("label", LabelManaged+"="+LabelManagedValue),
		filters.Arg("label", LabelConfig+"="+configID),
	)
}

// hasConfigLabels reports whether labels include configID's configLabels.
func hasConfigLabels(labels map[string]string, configID string) bool {
	return labels[LabelManaged] == LabelManagedValue && labels[LabelConfig] == configID
}

// ownedFilter selects the containers of one config of this daemon (a bare
// key filters on the label's presence).
func ownedFilter(configID string) filters.Args {
	f := configFilter(configID)
	f.Add("label", LabelInstance)
	return f
}

// isOwned reports whether labels mark a container of configID.
func isOwned(labels map[string]string, configID string) bool {
	_, hasInstance := labels[LabelInstance]
	return hasConfigLabels(labels, configID) && hasInstance
}

// ownerLabels reads back what containerLabels stored about a run.
func ownerLabels(labels map[string]string) (containerName, instance, configHash string, generation uint64) {
	generation, _ = strconv.ParseUint(labels[LabelGeneration], 10, 64)
	return labels[LabelContainer], labels[LabelInstance], labels[LabelConfigHash], generation
}

// imageLabels are stamped on images that lunorad builds.
func imageLabels(configID, containerName string) map[string]string {
	labels := configLabels(configID)
	labels[LabelContainer] = containerName
	return labels
}

// containerLabels merges the user's labels with the ownership labels; the
// user's labels in the reserved namespace are returned in dropped.
func containerLabels(configID, containerName, instance, configHash string, generation uint64, user map[string]string) (labels map[string]string, dropped []string) {
	labels = make(map[string]string, len(user)+6)
	for k, v := range user {
		if strings.HasPrefix(k, ownershipPrefix) {
			dropped = append(dropped, k)
			continue
		}
		labels[k] = v
	}
	labels[LabelManaged] = LabelManagedValue
	labels[LabelConfig] = configID
	labels[LabelContainer] = containerName
	labels[LabelInstance] = instance
	labels[LabelConfigHash] = configHash
	labels[LabelGeneration] = strconv.FormatUint(generation, 10)
	return labels, dropped
}
