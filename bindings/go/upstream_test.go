package snapshotter_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testdata/upstream is a program written against d7y.io/snapshotter's API
// (snapshot, restore, three concurrent runs, ErrSnapshotAlreadyExists with
// ==, a restore into the same directory twice, the oci and dragonfly
// clients) with only its import paths changed. It is built and run against
// the test services, configured through upstream's environment variables;
// with a library built without Dragonfly, content goes to S3 directly.
func TestUpstreamAPIProgramRunsUnchanged(t *testing.T) {
	env := services(t)
	if env["S3_ENDPOINT"] == "" || env["REGISTRY_PLAIN"] == "" {
		t.Skip("no S3 or registry in SERVICES_ENV")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "upstream")
	build := exec.Command("go", "build", "-o", bin, "./testdata/upstream")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/upstream: %v\n%s", err, out)
	}
	dragonflyEndpoint := ""
	if hasDragonfly(t) {
		dragonflyEndpoint = env["DRAGONFLY_ENDPOINT"]
	} else {
		t.Log("libsnapshotter has no Dragonfly transport: content goes to S3 directly")
	}
	run := exec.Command(bin)
	run.Env = append(os.Environ(),
		"SNAPSHOTTER_ROOT_DIR="+filepath.Join(dir, "root"),
		"DRAGONFLY_ENDPOINT="+dragonflyEndpoint,
		"REGISTRY_ENDPOINT="+env["REGISTRY_PLAIN"],
		"REGISTRY_NAMESPACE="+uniqueNamespace(t),
		"CONTENT_PROVIDER=s3",
		"CONTENT_BUCKET="+env["S3_BUCKET"],
		"CONTENT_REGION="+env["S3_REGION"],
		"CONTENT_ENDPOINT="+env["S3_ENDPOINT"],
		"CONTENT_ACCESS_KEY_ID="+env["S3_ACCESS_KEY_ID"],
		"CONTENT_ACCESS_KEY_SECRET="+env["S3_SECRET_ACCESS_KEY"],
		"TMPDIR="+dir,
	)
	out, err := run.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the upstream-API program failed: %v", err)
	}
}
