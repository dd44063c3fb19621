package config

import (
	"regexp"
	"testing"
)

func TestNamingFollowsLunora(t *testing.T) {
	tests := []struct{ name, binding, class, tag string }{
		{"transcoder", "CONTAINER_TRANSCODER", "TranscoderContainer", "lunora-transcoder:build"},
		{"imageResizer", "CONTAINER_IMAGE_RESIZER", "ImageResizerContainer", "lunora-image-resizer:build"},
		{"image_resizer", "CONTAINER_IMAGE_RESIZER", "Image_resizerContainer", "lunora-image_resizer:build"},
		{"ffmpeg2Pass", "CONTAINER_FFMPEG2_PASS", "Ffmpeg2PassContainer", "lunora-ffmpeg2-pass:build"},
		{"HTTPServer", "CONTAINER_HTTPSERVER", "HTTPServerContainer", "lunora-httpserver:build"},
		{"myHTTPServer", "CONTAINER_MY_HTTPSERVER", "MyHTTPServerContainer", "lunora-my-httpserver:build"},
		{"$box", "CONTAINER_$BOX", "$boxContainer", "lunora-$box:build"},
	}
	for _, tt := range tests {
		if got := BindingName(tt.name); got != tt.binding {
			t.Errorf("BindingName(%q) = %q, want %q", tt.name, got, tt.binding)
		}
		if got := ClassName(tt.name); got != tt.class {
			t.Errorf("ClassName(%q) = %q, want %q", tt.name, got, tt.class)
		}
		if got := BuildTag(tt.name); got != tt.tag {
			t.Errorf("BuildTag(%q) = %q, want %q", tt.name, got, tt.tag)
		}
	}
}

func TestDurableObjectID(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	id := DurableObjectID("hello", "alice")
	if !hex64.MatchString(id) {
		t.Fatalf("DurableObjectID = %q, want 64 lower-case hex characters", id)
	}
	if DurableObjectID("hello", "alice") != id {
		t.Error("not stable")
	}
	// The separator keeps ("ab","c") and ("a","bc") apart.
	for _, other := range [][2]string{{"hello", "bob"}, {"other", "alice"}, {"helloa", "lice"}, {"hello", "alice "}} {
		if DurableObjectID(other[0], other[1]) == id {
			t.Errorf("%v collides with (hello, alice)", other)
		}
	}
}

func TestApplicationID(t *testing.T) {
	id := ApplicationID("hello")
	if !regexp.MustCompile(`^local-[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("ApplicationID = %q", id)
	}
	if ApplicationID("hello") != id || ApplicationID("world") == id {
		t.Error("want stable per name and distinct across names")
	}
}

func TestUnknownKeySuggestsOnlyTypos(t *testing.T) {
	known := []string{"image", "defaultPort", "sleepAfter"}
	for key, want := range map[string]string{
		"defaultport": "unknown key; did you mean `defaultPort`?", // case only
		"sleepafer":   "unknown key; did you mean `sleepAfter`?",  // case and one letter
		"imag":        "unknown key; did you mean `image`?",
		"port":        "unknown key; expected one of image, defaultPort, sleepAfter", // too far for a typo
	} {
		if got := unknownKey(key, known); got != want {
			t.Errorf("unknownKey(%q) = %q, want %q", key, got, want)
		}
	}
}
