package main

// Builds the image from SERIN_BINARY (default ../../target/debug/serin), reads the OCI layout
// back as a consumer would, and runs the binary taken out of the layer. With
// SERIN_REQUIRE_STATIC=1 the binary must also be statically linked (the release image).

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func serinBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SERIN_BINARY")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "debug", "serin")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no serin binary at %s (build it with cargo build -p serin, or set SERIN_BINARY): %v", bin, err)
	}
	return bin
}

func TestLayoutReadsBackAndItsBinaryRuns(t *testing.T) {
	bin := serinBinary(t)
	dir := filepath.Join(t.TempDir(), "layout")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	digest, err := WriteLayout(dir, Options{Binary: bin, CABundle: ca, Version: "0.1.0", Revision: "abc123"})
	if err != nil {
		t.Fatal(err)
	}

	// The layout: oci-layout marker, one index entry with the ref name, the image by digest.
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatalf("no oci-layout file: %v", err)
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(manifest.Manifests))
	}
	entry := manifest.Manifests[0]
	if entry.Digest != digest {
		t.Errorf("index digest %s, built %s", entry.Digest, digest)
	}
	if got := entry.Annotations["org.opencontainers.image.ref.name"]; got != "0.1.0" {
		t.Errorf("ref name %q", got)
	}
	img, err := index.Image(entry.Digest)
	if err != nil {
		t.Fatal(err)
	}

	// The config.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/serin" {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	if strings.Join(c.Cmd, " ") != "controller" {
		t.Errorf("cmd %q", c.Cmd)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q", c.User)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.title":    "serin",
		"org.opencontainers.image.version":  "0.1.0",
		"org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.licenses": "Apache-2.0",
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !contains(c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %q", c.Env)
	}

	// The layer's files.
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	extracted := filepath.Join(t.TempDir(), "serin")
	modes := map[string]int64{}
	var passwd string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
		switch h.Name {
		case "usr/local/bin/serin":
			out, err := os.OpenFile(extracted, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			out.Close()
		case "etc/passwd":
			b, _ := io.ReadAll(tr)
			passwd = string(b)
		}
	}
	for name, want := range map[string]int64{"usr/local/bin/serin": 0o755, "tmp/": 0o1777, "etc/ssl/certs/ca-certificates.crt": 0o644} {
		if got, ok := modes[name]; !ok || got != want {
			t.Errorf("%s: mode %o (present %v), want %o", name, got, ok, want)
		}
	}
	if !strings.Contains(passwd, "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user: %q", passwd)
	}

	// The binary out of the layer runs.
	out, err := exec.Command(extracted, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "serin ") {
		t.Fatalf("serin --version: %v: %s", err, out)
	}
	out, err = exec.Command(extracted, "crds").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "name: canaries.flagger.app") {
		t.Fatalf("serin crds: %v: %.300s", err, out)
	}
	t.Logf("image %s: %s", digest, firstLine(string(mustRun(t, extracted, "--version"))))

	static := isStatic(t, extracted)
	if os.Getenv("SERIN_REQUIRE_STATIC") == "1" && !static {
		t.Errorf("%s is dynamically linked: the image has no libc (build the x86_64-unknown-linux-musl target)", bin)
	}
	t.Logf("statically linked: %v", static)
}

func TestMissingBinaryIsAPlainError(t *testing.T) {
	_, err := WriteLayout(filepath.Join(t.TempDir(), "l"), Options{Binary: "/nonexistent/serin", Version: "x"})
	if err == nil || !strings.Contains(err.Error(), "reading the binary") {
		t.Fatalf("error %v", err)
	}
}

func TestImageIsReproducible(t *testing.T) {
	bin := serinBinary(t)
	a, err := WriteLayout(filepath.Join(t.TempDir(), "a"), Options{Binary: bin, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteLayout(filepath.Join(t.TempDir(), "b"), Options{Binary: bin, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("two builds differ: %s and %s", a, b)
	}
}

func isStatic(t *testing.T, path string) bool {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

func mustRun(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
