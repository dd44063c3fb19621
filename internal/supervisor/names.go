package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// containerName is the deterministic Docker name of one instance's container:
// lunorad-<configID[:8]>-<container>-<sha256(instance)[:12]>. The instance id
// is hashed because it may contain any character, and Docker names allow only
// [a-zA-Z0-9][a-zA-Z0-9_.-]+. The same (config, container, instance) always
// maps to the same name, which is what makes a stale container conflict on
// create instead of running twice.
func containerName(configID, container, instance string) string {
	sum := sha256.Sum256([]byte(instance))
	return "lunorad-" + shortConfigID(configID) + "-" + sanitizeName(container) + "-" + hex.EncodeToString(sum[:])[:12]
}

// shortConfigID is the first 8 name-safe characters of the config identity.
func shortConfigID(configID string) string {
	s := sanitizeName(configID)
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

// sanitizeName replaces every character Docker names do not allow with '-'.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)), r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// buildTag is Lunora's containerBuildTag: lunora-<kebab-lower name>:build.
func buildTag(containerName string) string {
	return "lunora-" + kebabLower(containerName) + ":build"
}

// scopedBuildTag also names the config, so that another lunorad config
// building a container of the same name (and retagging lunora-<name>:build)
// does not leave this config's image untagged.
func scopedBuildTag(configID, containerName string) string {
	return "lunorad-" + strings.ToLower(shortConfigID(configID)) + "-" + kebabLower(containerName) + ":build"
}

// kebabLower turns an export name into a valid image repository component:
// a '-' between a lower-case letter or digit and an upper-case letter
// ("imageResizer" -> "image-resizer"), lower case, and any run of other
// characters collapsed to a single '-'.
func kebabLower(name string) string {
	var b strings.Builder
	prevLowerOrDigit, pendingDash := false, false
	for _, r := range name {
		isUpper := r >= 'A' && r <= 'Z'
		isLowerOrDigit := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')
		if !isUpper && !isLowerOrDigit {
			pendingDash = b.Len() > 0
			prevLowerOrDigit = false
			continue
		}
		if (pendingDash || (isUpper && prevLowerOrDigit)) && b.Len() > 0 {
			b.WriteByte('-')
		}
		pendingDash = false
		b.WriteRune(unicode.ToLower(r))
		prevLowerOrDigit = isLowerOrDigit
	}
	if b.Len() == 0 {
		return "container"
	}
	return b.String()
}
