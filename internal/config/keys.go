package config

import (
	"fmt"
	"strings"
)

// The keys the parser accepts, in one place: the parser rejects any other key
// as "unknown key", and schema_test.go checks that configs/lunorad.schema.json
// lists exactly these, so the schema and the parser cannot drift apart.
var (
	// topLevelKeys: `$schema` lets editors find the JSON Schema; it is ignored.
	topLevelKeys = []string{"$schema", "listen", "containers"}

	// containerKeys are defineContainer's options, in Lunora's check order,
	// then the ones it does not check (name, schedulingPolicy, sandbox, backups).
	containerKeys = []string{
		"image", "defaultPort", "rollout", "maxInstances", "instanceType",
		"sleepAfter", "hardTimeout", "env", "buildArgs", "secrets", "secretsStore",
		"requiredPorts", "entrypoint", "enableInternet", "allowedHosts", "deniedHosts",
		"interceptHttps", "pingEndpoint", "labels", "readyOn",
		"name", "schedulingPolicy", "sandbox", "backups",
	}

	imageObjectKeys  = []string{"registry", "build"}
	rolloutKeys      = []string{"stepPercentage", "gracePeriodSeconds"}
	instanceTypeKeys = []string{"vcpu", "memoryMib", "diskMb"}
	readyOnKeys      = []string{"path", "port", "status"}
	backupsKeys      = []string{"bucket", "prefix"}
)

// unknownKey is the message for a key that is not in known: it names the
// closest known key when the difference looks like a typo, and otherwise
// lists what is accepted, so the message says what to write instead.
func unknownKey(key string, known []string) string {
	best, bestDist := "", 3 // more than 2 edits away is not a typo
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean `%s`?", best)
	}
	return "unknown key; expected one of " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance between a and b (bytes; keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
