// Command oci-image writes Serin's container image as an OCI image layout, without a Docker
// engine or a registry: one layer holding the serin binary at /usr/local/bin/serin, /etc/passwd
// and /etc/group with the nonroot user (65532), an empty /tmp and, when given, a CA bundle; a
// config with the entrypoint, the non-root user and the org.opencontainers.image.* labels. The
// layout can be pushed with any OCI tool (crane push, skopeo copy oci:..., oras).
//
//	go run . -binary ../../target/x86_64-unknown-linux-gnu/production/serin -out ../../target/oci/serin \
//	    -version 0.1.0 -revision $(git rev-parse HEAD) -ca-bundle /etc/ssl/certs/ca-certificates.crt
//
// A static binary (the images ship glibc linked statically; a musl build is static too) needs
// nothing else. A dynamically linked one (a glibc build without crt-static) brings its loader
// and the shared libraries it needs, taken from this machine, as distroless/cc would.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Options describe the image to build.
type Options struct {
	Binary   string // path of the serin binary
	CABundle string // optional PEM bundle, installed at /etc/ssl/certs/ca-certificates.crt
	Version  string
	Revision string
	RefName  string // org.opencontainers.image.ref.name of the layout's index entry
}

const (
	binaryPath = "usr/local/bin/serin"
	caPath     = "etc/ssl/certs/ca-certificates.crt"
	uid        = 65532
)

// The fixed creation time keeps the image reproducible (SOURCE_DATE_EPOCH overrides it).
func created() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var secs int64
		if _, err := fmt.Sscan(s, &secs); err == nil {
			return time.Unix(secs, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

// libDirs are where the libraries of a dynamically linked binary are looked for on this
// machine (Debian's multiarch directories first).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// imageLibDir is where they go in the image: the first directory glibc's loader searches on
// Debian, with no ld.so.cache.
const imageLibDir = "lib/x86_64-linux-gnu"

// linkage returns an ELF file's PT_INTERP ("" for a static binary) and its DT_NEEDED list.
func linkage(file string) (interp string, needed []string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", nil, fmt.Errorf("reading %s as ELF: %w", file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return "", nil, fmt.Errorf("reading the interpreter of %s: %w", file, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if needed, err = f.ImportedLibraries(); err != nil {
		return "", nil, fmt.Errorf("reading the libraries of %s: %w", file, err)
	}
	return interp, needed, nil
}

// sharedLibraries returns what the loader of a dynamically linked binary needs in the image,
// by path in the image: the loader itself at the binary's PT_INTERP path, and every library
// in the DT_NEEDED closure of the binary in imageLibDir. A static binary needs nothing.
func sharedLibraries(binary string) (map[string][]byte, error) {
	interp, needed, err := linkage(binary)
	if err != nil || interp == "" {
		return nil, err
	}
	files := map[string][]byte{}
	loader, err := os.ReadFile(interp)
	if err != nil {
		return nil, fmt.Errorf("reading the loader %s: %w", interp, err)
	}
	files[strings.TrimPrefix(interp, "/")] = loader
	seen := map[string]bool{path.Base(interp): true}
	for len(needed) > 0 {
		name := needed[0]
		needed = needed[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		found := ""
		for _, dir := range libDirs {
			if _, err := os.Stat(path.Join(dir, name)); err == nil {
				found = path.Join(dir, name)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("the binary needs %s, which is in none of %s", name, strings.Join(libDirs, ", "))
		}
		data, err := os.ReadFile(found)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", found, err)
		}
		files[imageLibDir+"/"+name] = data
		_, more, err := linkage(found)
		if err != nil {
			return nil, err
		}
		needed = append(needed, more...)
	}
	return files, nil
}

// rootfs returns the layer's tar stream.
func rootfs(o Options) ([]byte, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading the binary: %w", err)
	}
	libs, err := sharedLibraries(o.Binary)
	if err != nil {
		return nil, err
	}
	var ca []byte
	if o.CABundle != "" {
		if ca, err = os.ReadFile(o.CABundle); err != nil {
			return nil, fmt.Errorf("reading the CA bundle: %w", err)
		}
	}
	mtime := created()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, owner int, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), Uid: owner, Gid: owner, ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755) },
		func() error {
			return file("etc/passwd", 0o644, 0, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
		},
		func() error { return file("etc/group", 0o644, 0, []byte("root:x:0:\nnonroot:x:65532:\n")) },
		func() error { return dir("home", 0o755) },
		func() error {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "home/nonroot/", Mode: 0o700, Uid: uid, Gid: uid, ModTime: mtime})
		},
		func() error { return dir("tmp", 0o1777) },
		func() error { return dir("usr", 0o755) },
		func() error { return dir("usr/local", 0o755) },
		func() error { return dir("usr/local/bin", 0o755) },
		func() error { return file(binaryPath, 0o755, 0, bin) },
	}
	// The libraries in a fixed order (the image is reproducible), each directory once.
	libPaths := make([]string, 0, len(libs))
	for p := range libs {
		libPaths = append(libPaths, p)
	}
	sort.Strings(libPaths)
	made := map[string]bool{"usr": true, "usr/local": true, "usr/local/bin": true, "etc": true, "home": true, "tmp": true}
	for _, p := range libPaths {
		var parents []string
		for d := path.Dir(p); d != "." && !made[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
			made[d] = true
		}
		for _, d := range parents {
			steps = append(steps, func() error { return dir(d, 0o755) })
		}
		steps = append(steps, func() error { return file(p, 0o755, 0, libs[p]) })
	}
	if ca != nil {
		steps = append(steps,
			func() error { return dir("etc/ssl", 0o755) },
			func() error { return dir("etc/ssl/certs", 0o755) },
			func() error { return file(caPath, 0o644, 0, ca) },
		)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("writing the layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	return buf.Bytes(), nil
}

// Build returns the image.
func Build(o Options) (v1.Image, error) {
	data, err := rootfs(o)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created()}
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/nonroot"}
	if o.CABundle != "" {
		env = append(env, "SSL_CERT_FILE=/"+caPath)
	}
	cf.Config = v1.Config{
		Entrypoint: []string{"/" + binaryPath},
		Cmd:        []string{"controller"},
		User:       fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir: "/",
		Env:        env,
		ExposedPorts: map[string]struct{}{
			"8080/tcp": {},
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "serin",
			"org.opencontainers.image.description": "Progressive delivery operator for Kubernetes, compatible with Flagger's API",
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.revision":    o.Revision,
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing the config: %w", err)
	}
	return img, nil
}

// WriteLayout writes the image as an OCI image layout at dir (replacing what is there).
func WriteLayout(dir string, o Options) (v1.Hash, error) {
	img, err := Build(o)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, fmt.Errorf("clearing %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("creating the layout %s: %w", dir, err)
	}
	ref := o.RefName
	if ref == "" {
		ref = o.Version
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return v1.Hash{}, fmt.Errorf("writing the image: %w", err)
	}
	return img.Digest()
}

func main() {
	var o Options
	out := flag.String("out", "target/oci/serin", "directory of the OCI image layout to write")
	flag.StringVar(&o.Binary, "binary", "", "the serin binary (static: glibc with crt-static, as the images ship it, or musl; a dynamically linked build brings its loader and libraries)")
	flag.StringVar(&o.CABundle, "ca-bundle", "", "PEM CA bundle to install at /"+caPath)
	flag.StringVar(&o.Version, "version", "dev", "image version (label and ref name)")
	flag.StringVar(&o.Revision, "revision", "", "source revision (label)")
	flag.StringVar(&o.RefName, "ref-name", "", "ref name in the layout's index (default: the version)")
	flag.Parse()
	if o.Binary == "" {
		fmt.Fprintln(os.Stderr, "oci-image: -binary is required")
		os.Exit(2)
	}
	digest, err := WriteLayout(*out, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "oci-image: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (image %s)\n", *out, digest)
}
