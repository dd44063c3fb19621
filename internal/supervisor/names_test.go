package supervisor

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestKebabLowerAndBuildTag(t *testing.T) {
	cases := map[string]string{
		"transcoder":     "lunora-transcoder:build",
		"imageResizer":   "lunora-image-resizer:build",
		"ffmpeg2Pass":    "lunora-ffmpeg2-pass:build",
		"image_resizer":  "lunora-image-resizer:build",
		"API":            "lunora-api:build",
		"my  box!!":      "lunora-my-box:build",
		"-lead":          "lunora-lead:build",
		"ÜnicodeName":    "lunora-nicode-name:build",
		"":               "lunora-container:build",
		"a.b":            "lunora-a-b:build",
		"HTTPServerTest": "lunora-httpserver-test:build",
	}
	repo := regexp.MustCompile(`^lunora-[a-z0-9]+(-[a-z0-9]+)*:build$`)
	for in, want := range cases {
		got := buildTag(in)
		if got != want {
			t.Errorf("buildTag(%q) = %q, want %q", in, got, want)
		}
		if !repo.MatchString(got) {
			t.Errorf("buildTag(%q) = %q is not a valid image reference", in, got)
		}
	}
}

func TestContainerNameIsDeterministicAndDockerSafe(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
	ids := []string{"user-42", "a/b c", "ünïcødé", "..", "x\x00y", strings.Repeat("z", 256)}
	seen := map[string]string{}
	for _, id := range ids {
		name := containerName("0123456789abcdef", "imageResizer", id)
		if name != containerName("0123456789abcdef", "imageResizer", id) {
			t.Fatalf("name for %q is not deterministic", id)
		}
		if !valid.MatchString(name) {
			t.Errorf("name %q for id %q is not a valid Docker name", name, id)
		}
		if !strings.HasPrefix(name, "lunorad-01234567-imageResizer-") {
			t.Errorf("name %q lacks the config and container parts", name)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("ids %q and %q map to the same name %q", prev, id, name)
		}
		seen[name] = id
	}
	if containerName("cfgA", "c", "1") == containerName("cfgB", "c", "1") {
		t.Error("different configs must give different names")
	}
	if got := containerName("cfg", "we ird/name", "1"); !valid.MatchString(got) {
		t.Errorf("container part not sanitised: %q", got)
	}
}

func TestParseSignal(t *testing.T) {
	good := map[string]string{
		"": "SIGTERM", "SIGTERM": "SIGTERM", "TERM": "SIGTERM", "sigterm": "SIGTERM", " 15 ": "SIGTERM",
		"9": "SIGKILL", "KILL": "SIGKILL", "SIGINT": "SIGINT", "2": "SIGINT", "usr1": "SIGUSR1",
	}
	for in, want := range good {
		got, err := parseSignal(in)
		if err != nil || got != want {
			t.Errorf("parseSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"SIGNOPE", "0", "64", "-1", "TERM;rm"} {
		if got, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q) = %q, want an error", bad, got)
		}
	}
}

func TestContainerLabelsKeepOwnership(t *testing.T) {
	labels, dropped := containerLabels("cfg", "web", "id/1", "hash", 7, map[string]string{
		"team": "media", LabelInstance: "forged", "sh.lunora.extra": "x",
	})
	want := map[string]string{
		"team": "media", LabelManaged: "true", LabelConfig: "cfg", LabelContainer: "web",
		LabelInstance: "id/1", LabelConfigHash: "hash", LabelGeneration: "7",
	}
	if len(labels) != len(want) {
		t.Errorf("labels = %v, want %v", labels, want)
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	if len(dropped) != 2 {
		t.Errorf("dropped = %v, want the two reserved user labels", dropped)
	}
	if !isOwned(labels, "cfg") || isOwned(labels, "other") || isOwned(map[string]string{LabelConfig: "cfg", LabelInstance: "1"}, "cfg") {
		t.Error("isOwned must require both the managed and the config label")
	}
	// What a container made by hand from a lunorad image inherits.
	if isOwned(imageLabels("cfg", "web"), "cfg") {
		t.Error("image labels alone must not make a container owned")
	}
}

func TestEngineUnreachableErrorText(t *testing.T) {
	for cause, want := range map[string]string{
		"dial unix /x.sock: connect: no such file\nor directory": "cannot reach the Docker Engine at unix:///x.sock: dial unix /x.sock: connect: no such file or directory. Start Docker",
		"Is the docker daemon running?":                          "cannot reach the Docker Engine at unix:///x.sock: Is the docker daemon running? Start Docker",
	} {
		got := (&EngineUnreachableError{Host: "unix:///x.sock", Err: errors.New(cause)}).Error()
		if !strings.HasPrefix(got, want) || strings.Contains(got, "\n") {
			t.Errorf("got  %q\nwant %q...", got, want)
		}
	}
}
