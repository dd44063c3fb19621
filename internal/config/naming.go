package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// Names derived from a container's export name, exactly as @lunora/container
// derives them (define-container.ts), plus the CLOUDFLARE_* identities
// lunorad gives each container and instance (PROTOCOL §4).

// BindingName is the Durable Object binding of an export: "CONTAINER_" and
// the name with "_" between a lower-case letter or digit and an upper-case
// letter, upper-cased (imageResizer → CONTAINER_IMAGE_RESIZER,
// ffmpeg2Pass → CONTAINER_FFMPEG2_PASS).
func BindingName(name string) string {
	return "CONTAINER_" + strings.ToUpper(splitCamel(name, '_'))
}

// ClassName is the generated Durable Object class: the name with its first
// letter upper-cased, then "Container" (imageResizer → ImageResizerContainer).
func ClassName(name string) string {
	if name == "" {
		return "Container"
	}
	r := []rune(name)
	return string(unicode.ToUpper(r[0])) + string(r[1:]) + "Container"
}

// BuildTag is the image tag Lunora builds a { build } image under
// (imageResizer → lunora-image-resizer:build).
func BuildTag(name string) string {
	return "lunora-" + strings.ToLower(splitCamel(name, '-')) + ":build"
}

// splitCamel inserts sep at every boundary Lunora's
// /(?<=[a-z0-9])(?=[A-Z])/ matches (ASCII only, as in JavaScript).
func splitCamel(name string, sep byte) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if i > 0 && 'A' <= c && c <= 'Z' {
			if p := name[i-1]; ('a' <= p && p <= 'z') || ('0' <= p && p <= '9') {
				b.WriteByte(sep)
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// DurableObjectID is CLOUDFLARE_DURABLE_OBJECT_ID for one instance: 64
// lower-case hex characters, like a real Durable Object id, stable for a
// (container, instance id) pair and different for any other pair.
func DurableObjectID(container, instance string) string {
	return hashHex("lunorad/durable-object\x00" + container + "\x00" + instance)
}

// ApplicationID is CLOUDFLARE_APPLICATION_ID for a container: stable per
// name and visibly local ("local-" and 16 hex characters).
func ApplicationID(container string) string {
	return "local-" + hashHex("lunorad/application\x00" + container)[:16]
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
