package config

import (
	"fmt"
	"math"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultInstanceType is Cloudflare's default instance type.
const DefaultInstanceType = "lite"

// namedInstanceTypes are Cloudflare's instance types (PROTOCOL §4,
// cloudflare-containers.md §4), in the order Lunora lists them.
var namedInstanceTypes = map[string]InstanceType{
	"basic":      {Name: "basic", VCPU: 0.25, MemoryMiB: 1024, DiskMB: 4000},
	"lite":       {Name: "lite", VCPU: 0.0625, MemoryMiB: 256, DiskMB: 2000},
	"standard-1": {Name: "standard-1", VCPU: 0.5, MemoryMiB: 4096, DiskMB: 8000},
	"standard-2": {Name: "standard-2", VCPU: 1, MemoryMiB: 6144, DiskMB: 12000},
	"standard-3": {Name: "standard-3", VCPU: 2, MemoryMiB: 8192, DiskMB: 16000},
	"standard-4": {Name: "standard-4", VCPU: 4, MemoryMiB: 12288, DiskMB: 20000},
}

// namedInstanceTypeOrder is Lunora's NAMED_INSTANCE_TYPES order, used in its message.
var namedInstanceTypeOrder = []string{"basic", "lite", "standard-1", "standard-2", "standard-3", "standard-4"}

// Limits of a custom instance type (@lunora/container src/instance-limits.ts).
const (
	customMinVCPU            = 1
	customMaxVCPU            = 4
	customMaxMemoryMiB       = 12288
	customMaxDiskMB          = 20000
	customMinMemoryMiBPerCPU = 3072
)

// LookupInstanceType returns a named instance type's limits.
func LookupInstanceType(name string) (InstanceType, bool) {
	it, ok := namedInstanceTypes[name]
	return it, ok
}

// NanoCPUs is the CPU limit in Docker's unit (1e9 per vCPU).
func (it InstanceType) NanoCPUs() int64 { return int64(math.Round(it.VCPU * 1e9)) }

// MemoryBytes is the memory limit in bytes.
func (it InstanceType) MemoryBytes() int64 { return int64(it.MemoryMiB) << 20 }

// instanceType validates a named type (with Lunora's message) or a custom
// { vcpu, memoryMib, diskMb } object against Cloudflare's limits. Omitted
// custom dimensions take Cloudflare's defaults (the lite values).
func (l *loader) instanceType(p string, n *yaml.Node) (InstanceType, bool) {
	if isSequence(n) {
		l.problemf(p, n, "`instanceType` must be one of %s, or a custom { vcpu, memoryMib, diskMb } object (got a list)", strings.Join(namedInstanceTypeOrder, ", "))
		return InstanceType{}, false
	}
	if !isMapping(n) {
		name, _ := scalarText(n)
		if it, ok := namedInstanceTypes[name]; ok {
			if _, isStr := stringValue(n); isStr {
				return it, true
			}
		}
		l.problemf(p, n, "unknown `instanceType` \"%s\" — use one of %s, or a custom { vcpu, memoryMib, diskMb } object", name, strings.Join(namedInstanceTypeOrder, ", "))
		return InstanceType{}, false
	}
	sub := l.knownKeys(p, n, instanceTypeKeys)
	it := namedInstanceTypes[DefaultInstanceType]
	it.Name = ""
	good := true
	if e, ok := sub["vcpu"]; ok {
		f, isNum := numberValue(e.Value)
		if !isNum || math.IsNaN(f) || f < customMinVCPU || f > customMaxVCPU {
			l.problemf(p+".vcpu", e.Value, "`instanceType.vcpu` must be a number in %d–%d (got %s); below 1 vCPU use the named lite or basic type", customMinVCPU, customMaxVCPU, describe(e.Value))
			good = false
		} else {
			it.VCPU = f
		}
	}
	if e, ok := sub["memoryMib"]; ok {
		f, isNum := numberValue(e.Value)
		if !isNum || !isInteger(f) || f < 1 || f > customMaxMemoryMiB {
			l.problemf(p+".memoryMib", e.Value, "`instanceType.memoryMib` must be an integer in 1–%d (got %s)", customMaxMemoryMiB, describe(e.Value))
			good = false
		} else {
			it.MemoryMiB = int(f)
		}
	}
	if e, ok := sub["diskMb"]; ok {
		f, isNum := numberValue(e.Value)
		if !isNum || !isInteger(f) || f < 1 || f > customMaxDiskMB {
			l.problemf(p+".diskMb", e.Value, "`instanceType.diskMb` must be an integer in 1–%d (got %s)", customMaxDiskMB, describe(e.Value))
			good = false
		} else {
			it.DiskMB = int(f)
		}
	}
	if good {
		if need := it.VCPU * customMinMemoryMiBPerCPU; float64(it.MemoryMiB) < need {
			at, node := p, n
			if e, ok := sub["memoryMib"]; ok {
				at, node = p+".memoryMib", e.Value
			}
			l.problemf(at, node, "`instanceType.memoryMib` must be at least %d MiB per vCPU: %s vCPU needs at least %s MiB (got %d)",
				customMinMemoryMiBPerCPU, jsNumber(it.VCPU), jsNumber(math.Ceil(need)), it.MemoryMiB)
			good = false
		}
	}
	return it, good
}

// String names the type and its limits, e.g. "standard-1 (0.5 vCPU, 4096 MiB, 8000 MB disk)".
func (it InstanceType) String() string {
	name := it.Name
	if name == "" {
		name = "custom"
	}
	return fmt.Sprintf("%s (%s vCPU, %d MiB, %d MB disk)", name, jsNumber(it.VCPU), it.MemoryMiB, it.DiskMB)
}
