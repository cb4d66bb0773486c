package main

// Builds the image from SERIN_BINARY (default ../../target/debug/serin), reads the OCI layout
// back as a consumer would, and runs the binary taken out of the layer. A dynamically linked
// binary must find its loader and every library it needs in the layer, and runs with them.
// SERIN_EXPECT_STATIC=1 (the images' build) fails the test when the binary is not static.

import (
	"archive/tar"
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
	root := t.TempDir()
	extracted := filepath.Join(root, "usr", "local", "bin", "serin")
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
		if h.Typeflag == tar.TypeReg {
			extract(t, filepath.Join(root, filepath.FromSlash(h.Name)), tr)
		}
		switch h.Name {
		case "etc/passwd":
			b, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
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

	interp := interpreter(t, extracted)
	t.Logf("statically linked: %v", interp == "")
	if os.Getenv("SERIN_EXPECT_STATIC") == "1" && interp != "" {
		t.Fatalf("the binary is not static: it asks for the loader %s", interp)
	}
	if interp == "" {
		return
	}
	// A dynamically linked binary: its loader at its PT_INTERP path, and every library of the
	// binary's and the libraries' DT_NEEDED in the image's library directory.
	libDir := filepath.Join(root, "lib", "x86_64-linux-gnu")
	loader := filepath.Join(root, filepath.FromSlash(interp))
	if _, err := os.Stat(loader); err != nil {
		t.Fatalf("the loader %s is not in the layer: %v", interp, err)
	}
	libs, err := os.ReadDir(libDir)
	if err != nil {
		t.Fatalf("no library directory in the layer: %v", err)
	}
	objects := []string{extracted}
	for _, l := range libs {
		objects = append(objects, filepath.Join(libDir, l.Name()))
	}
	for _, o := range objects {
		for _, need := range imported(t, o) {
			if need == filepath.Base(interp) {
				continue
			}
			if _, err := os.Stat(filepath.Join(libDir, need)); err != nil {
				t.Errorf("%s needs %s, which is not in the layer", filepath.Base(o), need)
			}
		}
	}
	// Run by the layer's loader with the layer's libraries (not this machine's cache).
	out, err = exec.Command(loader, "--inhibit-cache", "--library-path", libDir, extracted, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "serin ") {
		t.Fatalf("serin --version with the layer's loader and libraries: %v: %s", err, out)
	}
	t.Logf("libraries in the layer: %d", len(libs))
}

func extract(t *testing.T, path string, r io.Reader) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, r); err != nil {
		t.Fatal(err)
	}
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

// interpreter is the PT_INTERP of an ELF file ("" for a static binary).
func interpreter(t *testing.T, file string) string {
	t.Helper()
	interp, _, err := linkage(file)
	if err != nil {
		t.Fatal(err)
	}
	return interp
}

// imported is the DT_NEEDED list of an ELF file.
func imported(t *testing.T, file string) []string {
	t.Helper()
	_, needed, err := linkage(file)
	if err != nil {
		t.Fatal(err)
	}
	return needed
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

// A dynamically linked program of this machine gets its loader and its libraries; a library
// found nowhere is a plain error, not an image that cannot start.
func TestSharedLibrariesOfADynamicBinary(t *testing.T) {
	const prog = "/bin/ls"
	if _, err := os.Stat(prog); err != nil || interpreter(t, prog) == "" {
		t.Skipf("%s is missing or static here", prog)
	}
	files, err := sharedLibraries(prog)
	if err != nil {
		t.Fatal(err)
	}
	interp := strings.TrimPrefix(interpreter(t, prog), "/")
	if _, ok := files[interp]; !ok {
		t.Errorf("no loader %s in %v", interp, keys(files))
	}
	if _, ok := files["lib/x86_64-linux-gnu/libc.so.6"]; !ok {
		t.Errorf("no libc in %v", keys(files))
	}

	saved := libDirs
	defer func() { libDirs = saved }()
	libDirs = []string{t.TempDir()}
	if _, err := sharedLibraries(prog); err == nil || !strings.Contains(err.Error(), "which is in none of") {
		t.Fatalf("error %v", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
