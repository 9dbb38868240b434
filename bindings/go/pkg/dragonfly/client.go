package dragonfly

import (
	"context"
	"errors"

	"github.com/libsnapshotter/snapshotter-go/internal/capi"
)

// DownloadRequest defines the request for downloading a file from Dragonfly.
type DownloadRequest struct {
	// Digest is the digest of the file ("xxh3:<hex>").
	Digest string

	// OutputPath is the path to the output file (replaced once the
	// download hashes to Digest).
	OutputPath string
}

// UploadRequest defines the request for uploading a file to Dragonfly.
type UploadRequest struct {
	// Digest is the digest of the file ("xxh3:<hex>"); the file must hash
	// to it.
	Digest string

	// SrcPath is the path to the source file (a content file, as in a
	// libsnapshotter store).
	SrcPath string
}

// Client is the interface for interacting with Dragonfly.
type Client interface {
	// Download downloads the file from Dragonfly.
	Download(ctx context.Context, req *DownloadRequest) error

	// Upload uploads the file to Dragonfly.
	Upload(ctx context.Context, req *UploadRequest) error
}

// New creates a client of the content transport through libsnapshotter:
// the Dragonfly daemon at dragonfly.Endpoint backed by provider's object
// storage, or (without an endpoint) the object storage directly. Calls
// block until done; a context already canceled fails at once.
func New(dragonfly Dragonfly, provider ContentProvider) (Client, error) {
	var s []capi.Setting
	add := func(name string, option int, v string) {
		if v != "" {
			s = append(s, capi.Setting{Name: name, Option: option, Str: v})
		}
	}
	if provider.Provider != "" || provider.Bucket != "" {
		add("Content (Provider, Bucket)", capi.OptContentURL, provider.Provider+"://"+provider.Bucket)
	}
	add("Content.Endpoint", capi.OptContentEndpoint, provider.Endpoint)
	add("Content.Region", capi.OptContentRegion, provider.Region)
	add("Content.AccessKeyID", capi.OptContentKeyID, provider.AccessKeyID)
	add("Content.AccessKeySecret", capi.OptContentSecret, provider.AccessKeySecret)
	add("Dragonfly.Endpoint", capi.OptDragonflyEndpoint, dragonfly.Endpoint)
	if len(s) == 0 {
		return nil, &capi.Error{Code: capi.CodeInvalid, Op: "content client", Message: "content client: no Dragonfly endpoint or object storage"}
	}
	return &client{settings: s}, nil
}

type client struct{ settings []capi.Setting }

func (c *client) Download(ctx context.Context, req *DownloadRequest) error {
	if req == nil {
		return errors.New("invalid download request")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return capi.Download(c.settings, req.Digest, req.OutputPath)
}

func (c *client) Upload(ctx context.Context, req *UploadRequest) error {
	if req == nil {
		return errors.New("invalid upload request")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return capi.Upload(c.settings, req.Digest, req.SrcPath)
}
