package config

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
