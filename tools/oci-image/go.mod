// Test and release tooling only: writes Serin's container image as an OCI image layout without a
// Docker engine (see main.go).
module github.com/serin/serin/tools/oci-image

go 1.26

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
