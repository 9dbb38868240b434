package snapshotter_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

// services reads the file scripts/services.sh start-registry writes, named
// by SERVICES_ENV; tests that need it are skipped without it.
func services(t *testing.T) map[string]string {
	t.Helper()
	path := os.Getenv("SERVICES_ENV")
	if path == "" {
		t.Skip("SERVICES_ENV is not set (scripts/services.sh start-registry DIR writes DIR/services.env)")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("SERVICES_ENV: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

func uniqueNamespace(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "gotest-" + hex.EncodeToString(b)
}

// layoutRefs lists the <repository>:<version> refs of an OCI layout
// directory's index.
func layoutRefs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatalf("registry layout: %v", err)
	}
	var index struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	refs := map[string]bool{}
	for _, m := range index.Manifests {
		refs[m.Annotations["org.opencontainers.image.ref.name"]] = true
	}
	return refs
}

// remoteTags lists a repository's tags through the distribution API.
func remoteTags(t *testing.T, reg testRegistry, repo string) map[string]bool {
	t.Helper()
	client := http.DefaultClient
	if reg.CAFile != "" {
		pem, err := os.ReadFile(reg.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	req, _ := http.NewRequest("GET", reg.Endpoint+"/v2/"+repo+"/tags/list", nil)
	if reg.Username != "" {
		req.SetBasicAuth(reg.Username, reg.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("tags of %s: %v", repo, err)
	}
	defer resp.Body.Close()
	var body struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("tags of %s: HTTP %d: %v", repo, resp.StatusCode, err)
	}
	tags := map[string]bool{}
	for _, tag := range body.Tags {
		tags[tag] = true
	}
	return tags
}

// registryRoundTrip publishes two versions (the registry given as
// per-call options), deletes one locally and restores it from the
// registry. It returns the repository the versions went to.
func registryRoundTrip(t *testing.T, reg testRegistry) string {
	t.Helper()
	s := openStore(t)
	c := makeCheckpoint(t, 7, smallSizes)
	ctx := context.Background()
	name := "sandboxes/sb-7"
	if err := s.Snapshot(ctx, c.request(name, "v1"), reg.options()...); err != nil {
		t.Fatalf("Snapshot v1: %v", err)
	}
	if err := s.Snapshot(ctx, c.request(name, "keep"), reg.options()...); err != nil {
		t.Fatalf("Snapshot keep: %v", err)
	}
	// Not local any more: Restore must fetch v1 from the registry (its
	// content is still here, through keep).
	if _, err := s.Delete(ctx, name, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Files(name, "v1"); !errIs(err, snapshotter.ErrNotFound) {
		t.Fatalf("Files after Delete = %v, want ErrNotFound", err)
	}
	out := filepath.Join(t.TempDir(), "out")
	var phases []snapshotter.Phase
	err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: name, Version: "v1", OutputDir: out},
		append(reg.options(), snapshotter.WithProgress(func(p snapshotter.Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		}))...)
	if err != nil {
		t.Fatalf("Restore from the registry: %v", err)
	}
	c.sameTree(t, out)
	if !containsPhase(phases, snapshotter.PhaseFetching) {
		t.Errorf("restore phases %v have no fetching", phases)
	}
	if _, err := s.Files(name, "v1"); err != nil {
		t.Errorf("Files after the fetch: %v", err)
	}
	err = s.Restore(ctx, &snapshotter.RestoreRequest{Name: name, Version: "never-pushed", OutputDir: t.TempDir()}, reg.options()...)
	if !errIs(err, snapshotter.ErrNotFound) {
		t.Errorf("Restore of a version the registry lacks = %v, want ErrNotFound", err)
	}
	if reg.Namespace != "" {
		return reg.Namespace + "/" + name
	}
	return name
}

func containsPhase(ps []snapshotter.Phase, p snapshotter.Phase) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func TestFileRegistryEndToEnd(t *testing.T) {
	dir := t.TempDir()
	repo := registryRoundTrip(t, testRegistry{Registry: oci.Registry{Endpoint: "file://" + dir, Namespace: "team"}})
	refs := layoutRefs(t, dir)
	if !refs[repo+":v1"] || !refs[repo+":keep"] {
		t.Fatalf("layout refs %v lack %s:v1 and :keep", refs, repo)
	}
}

// Options given to a call are for that call only, on top of the store's
// settings from New (as in d7y.io/snapshotter).
func TestPerCallRegistryIsForThatCallOnly(t *testing.T) {
	base, a, b := t.TempDir(), t.TempDir(), t.TempDir()
	with := func(dir string) snapshotter.Option {
		return snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + dir}})
	}
	s := openStore(t, with(base))
	c := makeCheckpoint(t, 8, smallSizes)
	ctx := context.Background()
	steps := []struct {
		version string
		opts    []snapshotter.Option
	}{
		{"v1", []snapshotter.Option{with(a)}},
		{"v2", nil},
		{"v3", []snapshotter.Option{with(b)}},
		{"v4", nil},
		{"v5", []snapshotter.Option{snapshotter.WithMetadata(snapshotter.Metadata{})}},
		{"v6", nil},
	}
	for _, st := range steps {
		if err := s.Snapshot(ctx, c.request("app", st.version), st.opts...); err != nil {
			t.Fatalf("Snapshot %s: %v", st.version, err)
		}
	}
	want := func(dir string, in ...string) {
		t.Helper()
		refs := layoutRefs(t, dir)
		if len(refs) != len(in) {
			t.Errorf("refs %v, want exactly %v", refs, in)
		}
		for _, v := range in {
			if !refs["app:"+v] {
				t.Errorf("refs %v lack app:%s", refs, v)
			}
		}
	}
	want(a, "v1")
	want(b, "v3")
	want(base, "v2", "v4", "v6")
}

func TestInvalidRegistryEndpointIsRefused(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 8, smallSizes)
	err := s.Snapshot(context.Background(), c.request("app", "v1"),
		snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://relative/dir"}}))
	if !errIs(err, snapshotter.ErrInvalid) {
		t.Fatalf("Snapshot with a relative file registry = %v, want ErrInvalid", err)
	}
	// The refused setting is not kept.
	if err := s.Snapshot(context.Background(), c.request("app", "v1")); err != nil {
		t.Fatalf("Snapshot after a refused registry: %v", err)
	}
}

func TestPlainRegistryEndToEnd(t *testing.T) {
	env := services(t)
	reg := testRegistry{Registry: oci.Registry{Endpoint: env["REGISTRY_PLAIN"], Namespace: uniqueNamespace(t)}}
	repo := registryRoundTrip(t, reg)
	if tags := remoteTags(t, reg, repo); !tags["v1"] || !tags["keep"] {
		t.Fatalf("registry tags of %s = %v, want v1 and keep", repo, tags)
	}
}

func TestTLSBasicRegistryEndToEnd(t *testing.T) {
	env := services(t)
	reg := testRegistry{oci.Registry{Endpoint: env["REGISTRY_TLS"], Namespace: uniqueNamespace(t),
		Username: env["REGISTRY_TLS_USER"], Password: env["REGISTRY_TLS_PASSWORD"]}, env["REGISTRY_TLS_CA"]}
	repo := registryRoundTrip(t, reg)
	if tags := remoteTags(t, reg, repo); !tags["v1"] || !tags["keep"] {
		t.Fatalf("registry tags of %s = %v, want v1 and keep", repo, tags)
	}
}

func TestTLSBasicRegistryRefusals(t *testing.T) {
	env := services(t)
	good := testRegistry{oci.Registry{Endpoint: env["REGISTRY_TLS"], Namespace: uniqueNamespace(t),
		Username: env["REGISTRY_TLS_USER"], Password: env["REGISTRY_TLS_PASSWORD"]}, env["REGISTRY_TLS_CA"]}
	s := openStore(t)
	c := makeCheckpoint(t, 9, smallSizes)
	ctx := context.Background()
	try := func(version string, reg testRegistry) error {
		return s.Snapshot(ctx, c.request("app", version), reg.options()...)
	}

	bad := good
	bad.Password = "wrong-password"
	err := try("v1", bad)
	if !errIs(err, snapshotter.ErrRegistry) {
		t.Fatalf("wrong password: %v, want ErrRegistry", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("the error shows the password: %v", err)
	}
	noCA := good
	noCA.CAFile = ""
	if err := try("v1", noCA); !errIs(err, snapshotter.ErrRegistry) {
		t.Fatalf("unknown CA: %v, want ErrRegistry", err)
	}
	// A failed publish records nothing.
	if l, err := s.List(); err != nil || len(l) != 0 {
		t.Fatalf("List after failed publishes = %v, %v; want nothing", l, err)
	}
	insecure := noCA
	insecure.Insecure = true
	if err := try("v1", insecure); err != nil {
		t.Fatalf("Insecure without the CA: %v", err)
	}
}

func TestTokenRegistryPushNeedsPushRights(t *testing.T) {
	env := services(t)
	ns := uniqueNamespace(t)
	// The realm is https with the test CA.
	registryRoundTrip(t, testRegistry{oci.Registry{Endpoint: env["REGISTRY_TOKEN"], Namespace: ns, Username: env["REGISTRY_TOKEN_USER"], Password: env["REGISTRY_TOKEN_PASSWORD"]}, env["REGISTRY_TLS_CA"]})

	s := openStore(t)
	c := makeCheckpoint(t, 10, smallSizes)
	err := s.Snapshot(context.Background(), c.request("app", "v1"), testRegistry{oci.Registry{Endpoint: env["REGISTRY_TOKEN"], Namespace: ns, Username: env["REGISTRY_TOKEN_READER"], Password: env["REGISTRY_TOKEN_READER_PASSWORD"]}, env["REGISTRY_TLS_CA"]}.options()...)
	if !errIs(err, snapshotter.ErrRegistry) {
		t.Fatalf("push with a pull-only token: %v, want ErrRegistry", err)
	}
}

// testRegistry is a registry and the CA file to trust for it.
type testRegistry struct {
	oci.Registry
	CAFile string
}

func (r testRegistry) options() []snapshotter.Option {
	opts := []snapshotter.Option{snapshotter.WithMetadata(snapshotter.Metadata{Registry: r.Registry})}
	if r.CAFile != "" {
		opts = append(opts, snapshotter.WithRegistryCAFile(r.CAFile))
	}
	return opts
}
